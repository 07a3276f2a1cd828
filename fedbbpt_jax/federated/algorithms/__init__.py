"""The algorithm contract (``algorithm.py``), the client and server halves every algorithm
is made of (local steps, cohort sampling, server optimizers, seed uploads), and one module
per algorithm: Fed-BBPT, FedOne, centralized, FedBPT, DFedSAM(-MGS), local-only."""
