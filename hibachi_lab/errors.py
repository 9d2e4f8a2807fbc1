"""The one exception type that means "the user's input is wrong" (exit code 2)."""


class BadInput(Exception):
    """Bad input: a file, a config key or an argument the user can fix.

    The message is one line a person can act on, e.g.
    ``traffic.jsonl:17: customer_sentiment: expected a number in [0, 1] or null, got 1.7``.
    """
