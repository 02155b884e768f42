"""What a method raises when its optional software is missing."""


class MethodUnavailable(RuntimeError):
    """A peer method's software is not installed; the message says how to install it."""
