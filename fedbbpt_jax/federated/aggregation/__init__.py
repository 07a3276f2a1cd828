"""How the server combines the clients' uploads: the ``AGGREGATORS`` registry (weighted
mean), the robust rules (median, trimmed mean, norm-bounded mean, Krum, multi-Krum),
client-level DP (``dp_gaussian``) and its privacy accountant."""
