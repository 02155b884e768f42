"""One construct per concern of the deployment; the stacks in infra/stacks only compose them."""
