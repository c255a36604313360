"""exp9 tests work in float64, as the exp9 runner does (switched on before any array is built)."""

from prereg.exp9 import enable_x64

enable_x64()
