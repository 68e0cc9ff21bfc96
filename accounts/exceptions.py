class TwoFactorRefused(Exception):
    """A two-factor step was refused; the message is written for the person at the keyboard."""
