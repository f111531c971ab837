"""How faithfully the real backend does what the scenario says, and how closely the
simulator matches it: capacity held on real servers (`hold`), and the sim-vs-real
grid behind `cachelab fidelity` (`grid`, `report`)."""
