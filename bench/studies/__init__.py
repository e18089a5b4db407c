"""Studies run on their own (sweep, alternating, gpu_floor, compile_modes): each measures,
checks and writes a JSON under out/bench/<machine>/; none renders report text."""
