"""Speculation methods beside draft models (EAGLE heads, MTP, n-gram, suffix, token trees): what a round of each costs under the cost model."""
