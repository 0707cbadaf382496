"""`mtrec benchmark ...`: measurements written to benchmarks/results/ as JSON and markdown."""
