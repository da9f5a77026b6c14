"""The rows of the table, one module per group. Each group is a base class
of Bench (bench.py): its method adds rows to self.table (or fills
self.memory, self.requests), measuring the paths Bench.setup made
(self.roots, self.tc, self.native, self.dc)."""
