"""`mnist-tiers report`: build.py assembles the page; every section renderer lives here
and reads the data the suite and the studies wrote (inputs.py finds and loads it)."""
