"""The stacks of the app: the image repository, and everything that runs predictd."""
