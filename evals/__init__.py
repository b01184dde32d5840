"""``make eval``: what users hear and read, measured against goals (see ``__main__``)."""
