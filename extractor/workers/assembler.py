"""Reassembling frames whose faces come back one by one, from any batch, in any order.

Pure bookkeeping (no process, no queue) so it is tested on its own: a frame is complete when
the detector said how many faces it has and that many have come back; frames are released
strictly in input order.
"""
from __future__ import annotations


class FrameAssembler:
    def __init__(self):
        self._expected: dict[int, int] = {}
        self._faces: dict[int, dict[int, object]] = {}
        self.next_seq = 0

    def expect(self, seq: int, face_count: int) -> None:
        """The detector found ``face_count`` faces in frame ``seq`` (0 completes it at once)."""
        self._expected[seq] = face_count
        self._faces.setdefault(seq, {})

    def add(self, seq: int, face_index: int, face) -> None:
        self._faces.setdefault(seq, {})[face_index] = face

    def is_complete(self, seq: int) -> bool:
        return seq in self._expected and len(self._faces.get(seq, ())) == self._expected[seq]

    def pop_ready(self) -> list[tuple[int, list]]:
        """Frames complete and next in input order, each with its faces in index order."""
        ready = []
        while self.is_complete(self.next_seq):
            faces = self._faces.pop(self.next_seq)
            del self._expected[self.next_seq]
            ready.append((self.next_seq, [faces[i] for i in sorted(faces)]))
            self.next_seq += 1
        return ready
