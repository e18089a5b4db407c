"""The `mnist-tiers` command line: the roof of the house. It imports bench/, profiles/ and
implementations/; nothing imports it."""
