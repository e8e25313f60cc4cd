"""dlib's serialisation, read in numpy: the one reader of dlib's shape predictor (``dlib_ert``) and
face recognition network (``dlib_resnet``) files."""
from __future__ import annotations

import numpy as np


class DlibReader:
    """dlib's serialisation: an integer is a header byte (0x80: negative; low 4 bits: how many
    bytes follow) and its little-endian bytes; a float is two integers, mantissa and power of
    two; a matrix is -rows, -columns and its values; a vector or a string is its length and its
    items; a boolean one character; a network's tensor its sizes and raw float32 values."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def integer(self) -> int:
        header = self.data[self.pos]
        size = header & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if header & 0x80 else value

    def floats(self, count: int) -> np.ndarray:
        out = np.empty(count, np.float64)
        done = 0
        while done < count:
            run = self._common_floats(out[done:]) if count - done >= 8 else 0
            done += run
            if done < count:  # one float of another width (or a short read): integer by integer
                mantissa = self.integer()
                out[done] = mantissa * 2.0 ** self.integer()  # exact: float32 mantissas have 24 bits
                done += 1
        return out

    def _common_floats(self, out: np.ndarray) -> int:
        """Reads into ``out`` the run of floats from here that have the usual width, a 3-byte
        mantissa and a 1-byte power (6 bytes: 996 in 1000 of the model's 16 million floats), all
        at once; returns how many. Each row's two headers are checked, so the run stops before
        the first float of another width, at a number boundary."""
        rows = min(len(out), (len(self.data) - self.pos) // 6)
        raw = np.frombuffer(self.data, np.uint8, count=rows * 6, offset=self.pos).reshape(rows, 6)
        usual = ((raw[:, 0] & 0x0F) == 3) & ((raw[:, 4] & 0x0F) == 1)
        run = rows if usual.all() else int(usual.argmin())
        raw = raw[:run].astype(np.int64)
        mantissa = raw[:, 1] | raw[:, 2] << 8 | raw[:, 3] << 16
        mantissa = np.where(raw[:, 0] & 0x80, -mantissa, mantissa)
        power = np.where(raw[:, 4] & 0x80, -raw[:, 5], raw[:, 5]).astype(np.int32)
        out[:run] = np.ldexp(mantissa.astype(np.float64), power)
        self.pos += 6 * run
        return run

    def matrix(self) -> np.ndarray:
        rows, cols = -self.integer(), -self.integer()
        return self.floats(rows * cols).reshape(rows, cols)

    def string(self) -> str:
        size = self.integer()
        text = self.data[self.pos:self.pos + size].decode("ascii")
        self.pos += size
        return text

    def number(self) -> float:
        """One float of dlib's default form (mantissa, power of two)."""
        return float(self.floats(1)[0])

    def flags(self, count: int) -> bytes:
        """``count`` booleans, each one character, '0' or '1'."""
        flags = self.data[self.pos:self.pos + count]
        if len(flags) != count or set(flags) - set(b"01"):
            raise ValueError(f"expected {count} flags at byte {self.pos}")
        self.pos += count
        return flags

    def tensor(self) -> np.ndarray:
        """A network tensor (version 2): its four sizes, then its values as little-endian float32."""
        if self.integer() != 2:
            raise ValueError(f"a tensor of another serialisation version at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.pos).reshape(shape)
        self.pos += 4 * count
        return values
