"""exp9_estimator tests work in float64, as its runner does (switched on before any array)."""

from prereg.exp9 import enable_x64

enable_x64()
