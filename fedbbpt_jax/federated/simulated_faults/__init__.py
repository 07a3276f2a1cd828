"""Faults a simulation injects to test robustness: malicious clients' attacks (label
flips, upload attacks) and dropouts; a deployment refuses them (real nodes fail for real)."""
