"""Compare the recordings of two runs of the same scenes, e.g. x86-64 against aarch64.

    python scripts/arm64_smoke_compare.py REFERENCE_DIR OTHER_DIR

Each directory holds one subdirectory per scene with the recordings that `recorder run` saved
there. Within a scene the recordings are paired in the order of their ids (which are the UTC
times they started, so the order of the requests in the scene). Each pair must have
bit-identical WAV files and identical sidecars, apart from the fields that name the wall-clock
time of the run (see VOLATILE). Prints the SHA-256 of every file compared; exits 1 on any
difference, on a different number of recordings, or on a scene without any recording.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

# Sidecar fields that differ between two runs of the same audio: the id and the audio file's
# name are the wall-clock time at which the request started, and started_at is that time.
# Everything else (wake word, score, threshold, offsets, duration, samples, end reason, source,
# the audio's SHA-256, ...) must be identical.
VOLATILE = ("id", "audio_file", "started_at")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(scene_dir: Path) -> list[tuple[dict, bytes, bytes]]:
    """(normalized sidecar, its canonical bytes, WAV bytes) per recording, in id order."""
    out = []
    for sidecar in sorted(scene_dir.glob("*.json")):
        meta = json.loads(sidecar.read_text())
        wav = (scene_dir / meta["audio_file"]).read_bytes()
        kept = {k: v for k, v in meta.items() if k not in VOLATILE}
        canonical = json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()
        out.append((kept, canonical, wav))
    return out


def compare(ref_root: Path, other_root: Path) -> bool:
    ref_scenes = sorted(p.name for p in ref_root.iterdir() if p.is_dir())
    other_scenes = sorted(p.name for p in other_root.iterdir() if p.is_dir())
    ok = True
    print(f"SHA-256 of each file: first {ref_root}, then {other_root}")
    if ref_scenes != other_scenes:
        print(f"MISMATCH: scenes {ref_scenes} against {other_scenes}")
        ok = False
    for scene in ref_scenes:
        ref = load(ref_root / scene)
        other = load(other_root / scene) if (other_root / scene).is_dir() else []
        print(f"{scene}: {len(ref)} recording(s) in {ref_root}, {len(other)} in {other_root}")
        if not ref:
            print(f"MISMATCH: {scene}: the reference saved nothing, so there is nothing to compare")
            ok = False
        if len(ref) != len(other):
            print(f"MISMATCH: {scene}: {len(ref)} recording(s) against {len(other)}")
            ok = False
        for i, ((ref_meta, ref_side, ref_wav), (meta, side, wav)) in enumerate(
            zip(ref, other, strict=False)
        ):
            for kind, a, b in (("wav", ref_wav, wav), ("sidecar", ref_side, side)):
                same = a == b
                ok = ok and same
                print(
                    f"  {scene}[{i}] {kind:7} {sha256(a)} {sha256(b)} "
                    f"{'identical' if same else 'MISMATCH'}"
                )
            for key in sorted(set(ref_meta) | set(meta)):
                if ref_meta.get(key) != meta.get(key):
                    print(f"    {key}: {ref_meta.get(key)!r} against {meta.get(key)!r}")
    return ok


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: arm64_smoke_compare.py REFERENCE_DIR OTHER_DIR", file=sys.stderr)
        return 2
    ok = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print("identical" if ok else "MISMATCH: the recordings differ (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
