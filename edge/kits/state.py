"""What the quick-test API holds: the kit catalogue, the ID hash secret, the kept cassette photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

from protocols.kits import Catalogue

from .catalogue import SHIPPED_CATALOGUE, load_catalogue


class KitsState:
    """The catalogue, the ID hash secret and the folder of kept cassette photos (under a quota)."""

    def __init__(
        self,
        catalogue: Catalogue,
        secret: bytes | None,
        photo_dir: Path,
        max_photo_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self.catalogue, self.secret, self.photo_dir = catalogue, secret, photo_dir
        self.max_photo_bytes, self.max_upload_bytes = max_photo_bytes, max_upload_bytes

    @classmethod
    def from_settings(cls, settings) -> KitsState:  # noqa: ANN001
        k = settings.kits
        catalogue = load_catalogue(SHIPPED_CATALOGUE, *k.catalogue_files)
        secret = None
        if k.id_secret_file:
            try:
                secret = Path(k.id_secret_file).read_bytes().strip()
            except OSError as exc:
                raise ValueError(f"kits.id_secret_file {k.id_secret_file}: {exc.strerror}") from None
            if len(secret) < 16:
                raise ValueError(
                    f"kits.id_secret_file {k.id_secret_file}: the secret must be at least 16 bytes"
                )
        return cls(
            catalogue, secret, settings.data_path / "kits" / "photos", k.max_photo_bytes, k.max_upload_bytes
        )

    def keep_photo(self, data: bytes) -> str:
        """Keep a photo by its sha256 (idempotent); past the quota the oldest are deleted first."""
        sha = hashlib.sha256(data).hexdigest()
        self.photo_dir.mkdir(parents=True, exist_ok=True)
        path = self.photo_dir / f"{sha}.img"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        files = sorted(self.photo_dir.glob("*.img"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for old in files:
            if total <= self.max_photo_bytes or old == path:
                break
            total -= old.stat().st_size
            old.unlink(missing_ok=True)
        return sha

    def has_photo(self, sha: str) -> bool:
        return (self.photo_dir / f"{sha}.img").exists()
