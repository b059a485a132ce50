"""aocr and kraken side by side on a real set of text lines: the same training lines, the same machine, the
same wall-clock minutes, and the same held-out lines scored with the same character error rate.

    python benchmarks/lines_vs_kraken.py --train /work/data/archiscribe/train --test /work/data/archiscribe/test \\
        --minutes 10,30 --kraken-venv /work/kraken-venv [--engines aocr,kraken]

--train and --test are folders (searched recursively) of line images with NAME.gt.txt beside each.
The engines run one after the other. Each trains once, from scratch and at its defaults, for the largest
of --minutes:

    aocr:   aocr dataset TRAIN OUT.tfrecords; aocr train OUT.tfrecords --model-dir DIR --no-resume
            --max-minutes M (it stops and saves by itself)
    kraken: ketos --device cpu --threads CORES train --format-type path --training-data MANIFEST --output DIR
            --freq F (stopped with SIGINT after M minutes, on which it writes checkpoint_abort.ckpt)

At each earlier mark (minutes after the training process started) the newest model the engine has saved
is copied aside: aocr's latest checkpoint (it saves every 100 steps), kraken's newest .ckpt (it saves one at
each validation, which --freq F makes every F epochs instead of kraken's default 1; --kraken-freq, default
0.5). The table gives each snapshot's age. After training every snapshot reads the test lines: aocr with
`aocr predict --checkpoint latest --format jsonl`, kraken with `ketos convert` to safetensors and then
`kraken --device cpu --threads CORES --input IMAGE OUT ... ocr --model MODEL --no-segmentation`.

Scores, over all test lines: CER = summed Levenshtein edits / summed reference characters, after Unicode
NFC and with the surrounding whitespace dropped; the same after upper-casing both texts (the figure to read
for a model that upper-cases its labels, as aocr does where its case rule says so); and the share of lines
read exactly. Prints a table and writes benchmarks/out/lines_vs_kraken.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, ROOT, aocr, machine, print_table, write_json  # noqa: E402

WORK = OUT / "lines_vs_kraken"
ENGINES = ("aocr", "kraken")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
STOP_GRACE_SECONDS = 300  # for a training told to stop, to save and exit
AOCR_OVERRUN_SECONDS = 600  # past --max-minutes, for aocr's start-up, last save and validation
STATE_PATH = re.compile(r'^model_checkpoint_path: "(.+)"$', re.MULTILINE)
# Run by the kraken venv's Python: the epoch and optimizer step a Lightning checkpoint was saved at.
CKPT_INFO = ("import json, sys, torch; c = torch.load(sys.argv[1], map_location='cpu', weights_only=False); "
             "print(json.dumps({'epoch': c.get('epoch'), 'step': c.get('global_step')}))")
KRAKEN_VERSIONS = ("import importlib.metadata as m, json; "
                   "print(json.dumps({p: m.version(p) for p in ('kraken', 'torch', 'lightning')}))")


@dataclass
class Snapshot:
    """The model an engine had saved at a minute mark, copied aside, and its scores once read."""

    minutes: float
    path: str | None = None  # None: nothing saved yet
    reached: str = ""  # the step (aocr) or epoch and step (kraken) it was saved at
    age_seconds: float | None = None  # how long before the mark it was saved
    scores: dict = field(default_factory=dict)


@dataclass
class Run:
    engine: str
    commands: list[str] = field(default_factory=list)
    train_seconds: float = 0.0
    prepare_seconds: float = 0.0  # aocr dataset; kraken reads its images inside the training process
    stopped_by: str = ""
    snapshots: list[Snapshot] = field(default_factory=list)


def fail(message: str) -> SystemExit:
    return SystemExit(f"lines_vs_kraken: {message}")


def shown(command: list[str]) -> str:
    """A command line as one string (arguments with spaces or empty ones quoted)."""
    return " ".join(arg if arg and " " not in arg else repr(arg) for arg in command)


def line_pairs(folder: Path) -> dict[str, str]:
    """{image path: reference text} of the line images under `folder` that have NAME.gt.txt beside them."""
    if not folder.is_dir():
        raise fail(f"{folder}: not a folder")
    pairs = {}
    for image in sorted(folder.rglob("*")):
        text = image.with_suffix(".gt.txt")
        if image.suffix.lower() in IMAGE_SUFFIXES and text.is_file():
            try:
                pairs[str(image)] = text.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise fail(f"{text}: not UTF-8 text") from None
    if not pairs:
        raise fail(f"{folder}: no line image ({', '.join(IMAGE_SUFFIXES)}) with a NAME.gt.txt beside it")
    return pairs


def normalized(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over characters (insertions, deletions and substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def score(references: dict[str, str], answers: dict[str, str]) -> dict:
    """CER (exact and upper-cased) and exact-line accuracy of `answers` ({image: text}; a missing image reads
    as the empty string) against `references`."""
    edits = folded_edits = chars = exact = 0
    for image, reference in references.items():
        truth, answer = normalized(reference), normalized(answers.get(image, ""))
        edits += edit_distance(truth, answer)
        folded_edits += edit_distance(normalized(truth.upper()), normalized(answer.upper()))
        chars += len(truth)
        exact += truth == answer
    return {"cer": edits / max(chars, 1), "cer_uppercased": folded_edits / max(chars, 1),
            "line_accuracy": exact / len(references), "lines": len(references),
            "unread": sum(image not in answers for image in references), "reference_chars": chars}


def parse_minutes(value: str) -> list[float]:
    try:
        marks = sorted({float(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: give minutes as numbers separated by commas") from None
    if not marks or marks[0] <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give one or more positive minutes, e.g. 10,30")
    return marks


def parse_engines(value: str) -> list[str]:
    engines = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [engine for engine in engines if engine not in ENGINES]
    if not engines or unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: choose from {', '.join(ENGINES)}, separated by commas")
    return list(dict.fromkeys(engines))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="folder of training line images and .gt.txt")
    parser.add_argument("--test", type=Path, required=True, help="folder of held-out line images and .gt.txt")
    parser.add_argument("--minutes", type=parse_minutes, default=[10.0, 30.0],
                        help="minute marks to score at, e.g. 10,30; each engine trains for the largest")
    parser.add_argument("--kraken-venv", type=Path, default=Path("/work/kraken-venv"),
                        help="virtual environment with kraken installed (its bin/ketos and bin/kraken)")
    parser.add_argument("--engines", type=parse_engines, default=list(ENGINES), help="aocr,kraken or one of them")
    parser.add_argument("--aocr-flags", default="", metavar="FLAGS",
                        help="more flags for aocr train, e.g. '--augment none' (default: none, the defaults)")
    parser.add_argument("--json", default="lines_vs_kraken.json", metavar="NAME",
                        help="the results file under benchmarks/out (default: %(default)s)")
    parser.add_argument("--kraken-freq", type=float, default=0.5,
                        help="kraken validates and saves a checkpoint every this many epochs (its --freq)")
    args = parser.parse_args()
    if "kraken" in args.engines:
        missing = [name for name in ("python", "ketos", "kraken") if not (args.kraken_venv / "bin" / name).exists()]
        if missing:
            parser.error(f"--kraken-venv {args.kraken_venv}: no bin/{', bin/'.join(missing)}; install kraken there")
    if args.kraken_freq <= 0 or (args.kraken_freq > 1 and not args.kraken_freq.is_integer()):
        parser.error("--kraken-freq: a fraction of an epoch (0 < F <= 1) or a whole number of epochs")
    return args


def log_tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-characters:] if path.exists() else ""


def stop(process: subprocess.Popen) -> None:
    """Ask a training to stop as Ctrl-C does (both engines save then), and kill it if it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def finished_by(process: subprocess.Popen, deadline: float) -> bool:
    """Wait for process until the monotonic time `deadline`; whether it has exited."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def train_with_marks(run: Run, command: list[str], cwd: Path, marks: list[float], interrupt: bool,
                     snapshot: Callable[[float], Snapshot]) -> subprocess.Popen:
    """Run a training `command` (output to cwd/train.log), calling snapshot(mark) at each mark but the last.
    At the last, `interrupt` stops it with SIGINT; otherwise it is waited for (it stops by itself), up to
    AOCR_OVERRUN_SECONDS more. Returns the finished process."""
    run.commands.append(shown(command))
    start = time.monotonic()
    with open(cwd / "train.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        for mark in marks[:-1]:
            finished_by(process, start + 60 * mark)
            run.snapshots.append(snapshot(mark))
        if finished_by(process, start + 60 * marks[-1] + (0 if interrupt else AOCR_OVERRUN_SECONDS)):
            run.stopped_by = f"itself, after {time.monotonic() - start:.0f} s"
        else:
            run.stopped_by = f"SIGINT after {time.monotonic() - start:.0f} s"
    finally:
        stop(process)
    run.train_seconds = round(time.monotonic() - start, 1)
    return process


def aocr_snapshot(model_dir: Path, mark: float) -> Snapshot:
    """A copy of the latest checkpoint in model_dir (its files, params.json and a `checkpoint` state file
    naming it) under WORK/aocr/snapshots/MARK."""
    state = model_dir / "checkpoint"
    found = STATE_PATH.search(state.read_text(encoding="utf-8")) if state.exists() else None
    if found is None:
        return Snapshot(mark)
    prefix = model_dir / Path(found.group(1)).name
    index = prefix.with_name(prefix.name + ".index")
    age = time.time() - index.stat().st_mtime
    target = WORK / "aocr" / "snapshots" / f"{mark:g}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in [model_dir / "params.json", *model_dir.glob(prefix.name + ".*")]:
        shutil.copy2(part, target / part.name)
    (target / "checkpoint").write_text(f'model_checkpoint_path: "{prefix.name}"\n'
                                       f'all_model_checkpoint_paths: "{prefix.name}"\n', encoding="utf-8")
    step = prefix.name.rsplit("-", 1)[-1]
    return Snapshot(mark, str(target), f"step {step}", round(age, 1))


def run_aocr(args: argparse.Namespace, references: dict[str, str]) -> Run:
    run, work = Run("aocr"), WORK / "aocr"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    records, model_dir = work / "train.tfrecords", work / "model"
    dataset = aocr("dataset", str(args.train), str(records), "--log-path", "")
    run.commands.append(shown(dataset))
    start = time.monotonic()
    made = subprocess.run(dataset, capture_output=True, text=True)
    run.prepare_seconds = time.monotonic() - start
    if made.returncode != 0:
        raise fail(f"aocr dataset failed:\n{made.stderr[-3000:]}")
    command = aocr("train", str(records), "--model-dir", str(model_dir), "--no-resume",
                   "--max-minutes", f"{args.minutes[-1]:g}", "--log-path", "", *shlex.split(args.aocr_flags))
    process = train_with_marks(run, command, work, args.minutes, False,
                               lambda mark: aocr_snapshot(model_dir, mark))
    if process.returncode != 0:
        raise fail(f"aocr train failed (exit {process.returncode}):\n{log_tail(work / 'train.log')}")
    run.snapshots.append(aocr_snapshot(model_dir, args.minutes[-1]))
    for snapshot in run.snapshots:
        if snapshot.path:
            snapshot.scores = aocr_scores(run, Path(snapshot.path), references)
    return run


def aocr_scores(run: Run, model_dir: Path, references: dict[str, str]) -> dict:
    """`aocr predict` of the test images (their paths on stdin) with the snapshot in model_dir, scored."""
    command = aocr("predict", "--model-dir", str(model_dir), "--checkpoint", "latest", "--format", "jsonl",
                   "--log-path", "")
    run.commands.append(shown(command) + " < TEST_IMAGE_PATHS")
    start = time.monotonic()
    read = subprocess.run(command, input="".join(f"{image}\n" for image in references), capture_output=True,
                          text=True)
    seconds = time.monotonic() - start
    if read.returncode != 0:
        raise fail(f"aocr predict failed with {model_dir}:\n{read.stderr[-3000:]}")
    answers = {}
    for line in read.stdout.splitlines():
        answer = json.loads(line)
        answers[answer["path"]] = answer["text"]
    return {**score(references, answers), "test_seconds": round(seconds, 1)}


def kraken_python(args: argparse.Namespace, code: str, *arguments: str) -> dict:
    """The JSON that `code` prints, run by the kraken venv's Python."""
    ran = subprocess.run([str(args.kraken_venv / "bin" / "python"), "-c", code, *arguments], capture_output=True,
                         text=True)
    if ran.returncode != 0:
        raise fail(f"the kraken venv's Python failed:\n{ran.stderr[-3000:]}")
    return json.loads(ran.stdout.strip().splitlines()[-1])


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest .ckpt in directory once its size has stopped changing (it may be being written); kraken
    deletes all but its 10 best, so one may vanish while this looks."""
    for _ in range(5):
        try:
            newest = max(directory.glob("*.ckpt"), key=lambda path: path.stat().st_mtime, default=None)
            size = -1
            while newest is not None and newest.stat().st_size != size:
                size = newest.stat().st_size
                time.sleep(2)
            return newest
        except FileNotFoundError:
            continue
    return None


def kraken_snapshot(directory: Path, mark: float) -> Snapshot:
    """A copy of kraken's newest checkpoint as WORK/kraken/snapshots/MARK.ckpt."""
    newest = newest_checkpoint(directory)
    if newest is None:
        return Snapshot(mark)
    target = WORK / "kraken" / "snapshots" / f"{mark:g}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(newest, target)  # keeps the time it was written
    return Snapshot(mark, str(target), newest.name, round(time.time() - target.stat().st_mtime, 1))


def run_kraken(args: argparse.Namespace, references: dict[str, str], train_images: list[str]) -> Run:
    run, work = Run("kraken"), WORK / "kraken"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    manifest, checkpoints = work / "train-manifest.txt", work / "checkpoints"
    manifest.write_text("".join(f"{image}\n" for image in train_images), encoding="utf-8")
    command = [str(args.kraken_venv / "bin" / "ketos"), "--device", "cpu", "--threads", str(os.cpu_count()),
               "train", "--format-type", "path", "--training-data", str(manifest), "--output", str(checkpoints),
               "--freq", f"{args.kraken_freq:g}"]
    process = train_with_marks(run, command, work, args.minutes, True,
                               lambda mark: kraken_snapshot(checkpoints, mark))
    stopped = process.returncode == 1 and run.stopped_by.startswith("SIGINT")  # Lightning exits 1 on Ctrl-C
    if not (process.returncode == 0 or stopped) or not checkpoints.is_dir():
        raise fail(f"ketos train failed (exit {process.returncode}):\n{log_tail(work / 'train.log')}")
    run.snapshots.append(kraken_snapshot(checkpoints, args.minutes[-1]))
    for snapshot in run.snapshots:
        if snapshot.path:
            info = kraken_python(args, CKPT_INFO, snapshot.path)
            snapshot.reached = f"step {info['step']}, epoch {info['epoch']} ({snapshot.reached})"
            snapshot.scores = kraken_scores(args, run, Path(snapshot.path), references)
    return run


def kraken_scores(args: argparse.Namespace, run: Run, checkpoint: Path, references: dict[str, str]) -> dict:
    """`ketos convert` of a snapshot to safetensors, then `kraken ... ocr --no-segmentation` of every test image
    in one process (each image one line), scored."""
    weights = checkpoint.with_suffix(".safetensors")
    convert = [str(args.kraken_venv / "bin" / "ketos"), "convert", "--output", str(weights), str(checkpoint)]
    run.commands.append(shown(convert))
    converted = subprocess.run(convert, capture_output=True, text=True)
    if converted.returncode != 0:
        raise fail(f"ketos convert failed for {checkpoint}:\n{converted.stderr[-3000:]}")
    texts = checkpoint.with_suffix(".texts")
    shutil.rmtree(texts, ignore_errors=True)
    texts.mkdir()
    outputs = {image: texts / f"{number:06d}.txt" for number, image in enumerate(references)}
    pairs = [part for image, output in outputs.items() for part in ("--input", image, str(output))]
    head = [str(args.kraken_venv / "bin" / "kraken"), "--device", "cpu", "--threads", str(os.cpu_count())]
    tail = ["ocr", "--model", str(weights), "--no-segmentation"]
    command = [*head, *pairs, *tail]
    run.commands.append(shown([*head, "--input", "IMAGE", "OUT.txt", f"(x{len(outputs)})", *tail]))
    start = time.monotonic()
    read = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if read.returncode != 0:
        raise fail(f"kraken ocr failed with {weights}:\n{read.stderr[-3000:]}")
    answers = {image: output.read_text(encoding="utf-8") for image, output in outputs.items() if output.exists()}
    return {**score(references, answers), "test_seconds": round(seconds, 1)}


def versions(args: argparse.Namespace, engines: list[str]) -> dict:
    """Package versions; aocr's commit, and whether aocr/ holds uncommitted changes (this run used them)."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "status", "--porcelain", "--", "aocr"], capture_output=True, text=True)
    found = {"aocr": importlib.metadata.version("aocr"), "aocr_commit": commit.stdout.strip(),
             "aocr_uncommitted_changes": bool(changed.stdout.strip())}
    if "kraken" in engines:
        found.update(kraken_python(args, KRAKEN_VERSIONS))
    return found


def table(runs: list[Run]) -> None:
    rows = [("engine, minutes", "model reached (snapshot age)", "test lines: CER, CER upper-cased, exact lines, time")]
    for run in runs:
        for snapshot in run.snapshots:
            label = f"{run.engine} {snapshot.minutes:g}"
            if not snapshot.path:
                rows.append((label, "no model saved yet", ""))
                continue
            s = snapshot.scores
            rows.append((label, f"{snapshot.reached} ({snapshot.age_seconds:.0f} s old)",
                         f"{100 * s['cer']:.2f}%, {100 * s['cer_uppercased']:.2f}%, "
                         f"{100 * s['line_accuracy']:.1f}% of {s['lines']}, {s['test_seconds']:.0f} s"))
    print_table(rows)


def main() -> None:
    args = parse_args()
    train_images = list(line_pairs(args.train))
    references = line_pairs(args.test)
    results = {"machine": machine(), "versions": versions(args, args.engines), "train": str(args.train),
               "train_lines": len(train_images), "test": str(args.test), "test_lines": len(references),
               "minutes": args.minutes, "kraken_freq": args.kraken_freq, "aocr_flags": args.aocr_flags, "runs": []}
    runs = []
    for engine in args.engines:
        runs.append(run_aocr(args, references) if engine == "aocr" else run_kraken(args, references, train_images))
        results["runs"] = [asdict(run) for run in runs]
        write_json(args.json, results)
    table(runs)
    print(f"wrote {OUT / args.json}")


if __name__ == "__main__":
    main()
