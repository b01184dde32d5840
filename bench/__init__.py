"""``make bench``: Yamabiko measured against baselines; see bench/README.md."""
