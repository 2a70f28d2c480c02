"""Link impairment settings (loss, delay/jitter, corruption, periodic drop) applied by a bridge."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DataPlaneError


@dataclass(frozen=True)
class Impairments:
    """What a bridge does to frames in both directions; all zero means a clean link."""

    loss_percent: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    corrupt_percent: float = 0.0
    drop_every: int = 0

    def __post_init__(self) -> None:
        for name in ("loss_percent", "corrupt_percent"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise DataPlaneError(f"Impairment {name} must be a number between 0 and 100, got {value!r}")
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 3_600_000:
                raise DataPlaneError(f"Impairment {name} must be a number of milliseconds >= 0, got {value!r}")
        if not isinstance(self.drop_every, int) or isinstance(self.drop_every, bool) or self.drop_every < 0:
            raise DataPlaneError(f"Impairment drop_every must be an integer >= 0, got {self.drop_every!r}")

    @property
    def active(self) -> bool:
        """True when at least one impairment changes traffic."""
        return bool(self.loss_percent or self.delay_ms or self.jitter_ms or self.corrupt_percent or self.drop_every)
