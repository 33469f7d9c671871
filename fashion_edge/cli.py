"""The `fashion-edge` command. Each verb parses, calls the library and prints.

Results go to stdout (a table, or one JSON object per line with --json); progress and
diagnostics go to stderr. Exit status: 0 all inputs done, 1 some input failed, 2 usage error.
"""
import json
import sys
from pathlib import Path

import click

from fashion_edge import __version__

MODEL_HELP = ("int8 (the packaged model), fp32 (the same network unquantized: compare them with 'bench'), "
              "or a .onnx file from export.to_onnx  [default: int8]")


def emit(obj):
    click.echo(json.dumps(obj, ensure_ascii=False))


def fail(message):
    """One line on stderr and exit 1: the input or the environment is at fault, not the usage."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def output_file(*suffixes):
    """An option callback: the file's folder must exist, and its name end in one of suffixes if
    given. Checked when the command starts, not when the work is done and its result written."""
    def check(ctx, param, value):
        if value is not None:
            path = Path(value)
            if not path.absolute().parent.is_dir():
                raise click.BadParameter(f"folder {path.parent} does not exist; create it first")
            if suffixes and path.suffix.lower() not in suffixes:
                choices = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)
                raise click.BadParameter(f"{path.name}: the name must end in {choices}")
        return value
    return check


def output_folder(ctx, param, value):
    """An option callback that creates the folder, so that a path that cannot be one fails at once."""
    if value is not None:
        try:
            Path(value).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise click.BadParameter(f"cannot create folder {value} ({e.strerror})") from None
    return value


def model_file(ctx, param, value):
    """An option callback: the packaged int8 or fp32 model by name, or a model file's path."""
    from fashion_edge.model import DEFAULT_MODEL, FP32_MODEL
    packaged = {"int8": DEFAULT_MODEL, "fp32": FP32_MODEL}
    if value is None or value in packaged:
        return str(packaged.get(value, DEFAULT_MODEL))
    if not Path(value).is_file():
        raise click.BadParameter(f"{value}: no such file; pass int8, fp32 or a .onnx file")
    return value


def model_option(f):
    return click.option("--model", callback=model_file, help=MODEL_HELP)(f)


def views_option(default, why):
    return click.option("--views", type=click.IntRange(1, 10), default=default, show_default=True,
                        help="views of each image whose answers are averaged: 1 the image, 2 with its mirror image, "
                             f"up to 10 with its one-pixel shifts; {why}")


class Progress:
    """progress(done, total) on stderr: a bar redrawn in place on a terminal; elsewhere (a log, a
    pipe) a line at each tenth, so a long run shows it is alive without filling the log."""

    def __init__(self, label):
        self.label, self.tty, self.shown = label, sys.stderr.isatty(), None

    def __call__(self, done, total):
        steps = 40 if self.tty else 10
        step = done * steps // max(total, 1)
        if step == self.shown:
            return
        self.shown = step
        if self.tty:
            click.echo(f"\r{self.label} [{'#' * step}{'-' * (steps - step)}] {done}/{total}", err=True, nl=done >= total)
        else:
            click.echo(f"{self.label}: {done}/{total} ({100 * done // max(total, 1)}%)", err=True)


def alone_option(f):
    return click.option("--alone", is_flag=True,
                        help="take every image for one garment alone, without looking for a person: skips the "
                             "garment-region network, about twice the frame rate where no one is in view")(f)


def load_classifier(model, threads=None, min_confidence=None, top_k=3, views=1, alone=False):
    from fashion_edge.classifier import Classifier
    from fashion_edge.model import ModelError
    try:
        return Classifier(model, threads=threads, min_confidence=min_confidence, top_k=top_k, views=views,
                          people=not alone)
    except ModelError as e:
        fail(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fashion-edge")
def main():
    """Recognize clothing in photos and camera frames, on a small CPU device.

    \b
      fashion-edge classify shirt.jpg          label one photo
      fashion-edge classify photos/ --json     every image in a folder, as JSON lines
      fashion-edge webcam --serve 8080         live view in a browser
      fashion-edge eval --photos DIR           accuracy on your own labelled photos
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", type=click.IntRange(1, 10), default=3, show_default=True, help="classes listed per input")
@model_option
@click.option("--threads", type=click.IntRange(1, 64),
              help="threads that prepare photos and run the model  [default: one per core; onnxruntime's choice]")
@click.option("--batch-size", type=click.IntRange(1, 256), default=64, show_default=True,
              help="images per inference call; each holds about 1.2 MB while it runs, and above 64 "
                   "throughput no longer grows")
@click.option("--min-confidence", type=click.FloatRange(0, 1),
              help="below this top-class probability the answer is 'unknown'  [default: the model's own, "
                   "chosen on real photos; see 'fashion-edge info']")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per input on stdout")
@click.option("--debug-dir", type=click.Path(file_okay=False), callback=output_folder,
              help="write each input's mask, crop and 28x28 model input here, numbered in input order "
                   "(0001-NAME.mask.png)")
@click.option("--save", "save_dir", type=click.Path(file_okay=False), callback=output_folder,
              help="write a copy of each image with the garment's box and the answer drawn on here, "
                   "numbered in input order (0001-NAME.jpg)")
@views_option(10, "fewer are faster on a slow CPU, at a small cost in accuracy (see the model card)")
@alone_option
def classify(inputs, top_k, model, threads, batch_size, min_confidence, as_json, debug_dir, save_dir, views, alone):
    """Label the garment in each image, or each garment a person in it wears.

    INPUTS are image files, directories (searched recursively for images, skipping hidden
    files and folders), glob patterns, or - for one image read from standard input.
    An input that cannot be read is reported on its own line and the rest go on; the exit
    status is then 1.
    """
    from fashion_edge.images import ImageError, expand
    paths = expand(inputs)
    if not paths:
        fail("no image files found in " + " ".join(inputs))
    clf = load_classifier(model, threads, min_confidence, top_k, views, alone)
    width = max(len(str(p)) for p in paths)
    failed = 0
    with click.progressbar(length=len(paths), label="classifying", file=sys.stderr,
                           hidden=len(paths) < 20 or not sys.stderr.isatty()) as bar:
        for index, (path, result) in enumerate(clf.predict_paths(paths, batch_size, debug_dir)):
            bar.update(1)
            if save_dir and not isinstance(result, ImageError) and not save_annotated(path, result, save_dir, index):
                failed += 1
            if isinstance(result, ImageError):
                failed += 1
                if as_json:
                    emit({"path": str(path), "error": str(result)})
                else:
                    click.echo(f"error: {result}", err=True)
            elif as_json:
                emit(result.to_dict())
            else:
                click.echo(f"{str(path):{width}}  {human_answer(result)}")
    sys.exit(1 if failed else 0)


def human_answer(result):
    """'Shirt         0.95   (Trouser 0.01, Bag 0.01)'; an unknown names the class it came closest to;
    a person's other garments follow: '; also Trouser 1.00, Sneaker 0.71'."""
    from fashion_edge.report import garment_answer, short_answer
    others = ", ".join(f"{t['label']} {t['confidence']:.2f}" for t in result.top_k[1:])
    others = f"   ({others})" if others else ""
    worn = ", ".join(garment_answer(g) for g in result.garments[1:])
    worn = f"; also {worn}" if worn else ""
    if result.class_id is not None:
        return f"{result.label:12}  {result.confidence:.2f}{others}{worn}"
    return short_answer(result) + (others if result.box else "") + worn


def save_annotated(path, result, folder, index):
    """--save: the image with its box and answer drawn on, written atomically; False, and a line
    on stderr, where it could not be (the file changed since, the disk is full)."""
    from fashion_edge import images, report
    try:
        image = images.load(path)
        report.write_image_atomic(Path(folder) / report.annotated_name(index, path), report.annotate(image, result))
    except (images.ImageError, OSError) as e:
        click.echo(f"error: {path}: annotated copy not written ({e})", err=True)
        return False
    return True


@main.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def info(model, as_json):
    """Show the model's labels, input convention and accuracy, and the runtime's versions."""
    details = {"version": __version__, **load_classifier(model).model.info()}
    if as_json:
        emit(details)
        return
    for key, value in details.items():
        if key == "metadata":
            for k, v in value.items():
                click.echo(f"{k:16} {v}")
        else:
            click.echo(f"{key:16} {', '.join(value) if key in ('labels', 'providers') else value}")


@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False), callback=output_folder,
              help="where to put the files  [default: ~/.cache/fashion-edge/fashion-mnist]")
@click.option("--base-url", default="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", show_default=True,
              help="where the four .gz files are served")
def download(folder, base_url):
    """Fetch the Fashion-MNIST files, verify their content and store them.

    Needed only for 'eval' and training; on Debian, Ubuntu and Raspberry Pi OS,
    'apt install dataset-fashion-mnist' provides the same files.
    """
    from fashion_edge.download import DownloadError, download as fetch_all
    try:
        where = fetch_all(folder, base_url)
    except DownloadError as e:
        fail(str(e))
    click.echo(f"Fashion-MNIST verified in {where}", err=True)


@main.command("eval")
@model_option
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), help="Fashion-MNIST files  [default: searched]")
@click.option("--photos", type=click.Path(exists=True, file_okay=False),
              help="a folder-per-class photo set instead of the Fashion-MNIST test set")
@click.option("--people", type=click.Path(exists=True, file_okay=False),
              help="photos of people instead: DIR/photos/ and DIR/labels.json, {\"NAME.jpg\": {\"main\": G, "
                   "\"garments\": [G, ...]}} with each garment G {\"class_ids\": [...], \"box\": [x, y, w, h], "
                   "\"area\": share of the photo}; scores the largest garment and every garment found")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
              help="a JSON object {\"folder\": [class ids or names], ...} ([] where no class fits), or a markdown "
                   "table: folder(s) | ... | acceptable ids such as '2 Pullover, 6 Shirt', or 'none'  "
                   "[default: PHOTOS/README.md]")
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="as for classify  [default: the model's own]")
@click.option("--plot", type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="write the confusion matrix here as a PNG")
@click.option("--limit", type=click.IntRange(1), help="only the first N test images: a quick check on a slow or emulated CPU")
@views_option(10, "as for classify")
@alone_option
@click.option("--json", "as_json", is_flag=True, help="print the results as one JSON object")
def evaluate(model, data_dir, photos, people, mapping, min_confidence, plot, limit, views, alone, as_json):
    """Measure accuracy: on the Fashion-MNIST test set, on labelled photos with --photos, or on
    photos of people with --people."""
    from fashion_edge import evaluate as ev
    from fashion_edge.dataset import DataError
    from fashion_edge.photos import PhotoSetError
    if plot and (photos or people):
        raise click.UsageError("--plot draws the 10-class confusion matrix of the Fashion-MNIST test set; "
                               "drop --photos and --people")
    if photos and people:
        raise click.UsageError("--photos and --people measure different sets; give one of them")
    clf = load_classifier(model, min_confidence=min_confidence, views=views, alone=alone)
    try:
        if people:
            result, _ = ev.on_people(clf, people, progress=Progress("evaluating photos of people"))
        elif photos:
            result, _ = ev.on_photos(clf, photos, mapping, progress=Progress("evaluating photos"))
            truth = preds = None
        else:
            result, truth, preds = ev.on_test_set(clf, data_dir, limit, progress=Progress("evaluating"))
    except (DataError, PhotoSetError) as e:
        fail(str(e))
    if plot:
        from fashion_edge.report import save_confusion_png
        save_confusion_png(truth, preds, plot, clf.labels, title="Fashion-MNIST test")
    if as_json:
        emit(result)
        return
    print_evaluation(result, photos, people)
    if plot:
        click.echo(f"confusion matrix written to {plot}", err=True)


@main.command()
@click.option("--source", default="0", show_default=True,
              help="camera index, video file, stream URL (rtsp://, http://) or 'picamera' (Raspberry Pi camera module)")
@click.option("--width", type=click.IntRange(16, 8192), help="capture width to ask the camera for")
@click.option("--height", type=click.IntRange(16, 8192), help="capture height to ask the camera for")
@model_option
@click.option("--threads", type=click.IntRange(1, 64), help="inference threads  [default: onnxruntime's choice]")
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="as for classify  [default: the model's own]")
@click.option("--smooth", type=click.IntRange(1, 100), default=5, show_default=True,
              help="average the probabilities over this many recent frames")
@views_option(1, "the frames are averaged already (--smooth), so more views mostly cost frame rate")
@click.option("--no-display", is_flag=True, help="no window, even where a display exists")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per processed frame on stdout")
@click.option("--serve", metavar="[HOST:]PORT",
              help="serve the live view at http://HOST:PORT/ (host: 127.0.0.1 unless you name another)")
@click.option("--save", type=click.Path(dir_okay=False),
              callback=output_file(".webm", ".mp4", ".avi", ".mkv", ".mov", ".m4v"),
              help="write the overlaid video here: .webm plays in browsers, .mp4 and .avi in video players")
@click.option("--loop", is_flag=True, help="replay a video file from the start when it ends")
@click.option("--max-frames", type=click.IntRange(1), help="stop after this many frames")
@click.option("--verbose", is_flag=True, help="print the time per stage (capture, preprocess, inference, overlay)")
@click.option("--index", "catalog_path", type=click.Path(dir_okay=False),
              help="a catalogue from 'fashion-edge index': its 3 nearest items are shown beside the view and "
                   "listed as \"similar\" with --json")
@alone_option
def webcam(source, width, height, model, threads, min_confidence, smooth, views, no_display, as_json, serve, save,
           loop, max_frames, verbose, catalog_path, alone):
    """Classify live frames from a camera, a video file or a stream.

    With a display a window shows the video (q or Esc quits); without one it runs headless.
    --serve shows it in a browser, also from another machine when HOST is 0.0.0.0.
    Ctrl-C or SIGTERM stops cleanly and prints a summary.
    """
    from fashion_edge import webcam as live
    from fashion_edge.camera import CameraError
    from fashion_edge.server import ServerError, parse_address
    try:
        address = parse_address(serve) if serve else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--serve") from None
    clf = load_classifier(model, threads, min_confidence, views=views, alone=alone)
    lookalikes = webcam_lookalikes(catalog_path, clf) if catalog_path else None
    try:
        live.run(clf, source, width, height, display=not no_display, as_json=as_json, serve=address, save=save,
                 loop_video=loop, max_frames=max_frames, smooth=smooth, verbose=verbose, lookalikes=lookalikes)
    except (CameraError, ServerError) as e:
        fail(str(e))


def print_evaluation(result, photos, people):
    """eval's human output: the figures of one set, per folder or class where it has them."""
    if people:
        click.echo(f"{result['n']} photos of people in {people} ({result['errors']} unreadable)")
        keys = ("largest_coarse_accuracy", "garments_found", "reported_matching", "garments_per_photo")
    elif photos:
        click.echo(f"{result['n']} photos in {photos} ({result['errors']} unreadable)")
        for name, r in result["per_folder"].items():
            value = "-" if r["value"] is None else f"{r['value']:.3f}"
            click.echo(f"  {name:14} {r['n']:5}  {r['measure']:8} {value}")
        keys = ("fine_accuracy", "coarse_accuracy", "unknown_rate_out_of_distribution", "unknown_rate_in_distribution")
    else:
        click.echo(f"Fashion-MNIST test set, {result['n']} images")
        for name, acc in result["per_class"].items():
            click.echo(f"  {name:12} {acc:.4f}")
        click.echo(f"accuracy {result['accuracy']:.4f}")
        return
    for key in keys:
        if result[key] is not None:
            click.echo(f"{key.replace('_', ' '):34} {result[key]:.4f}")


@main.command()
@model_option
@click.option("--compare", callback=model_file, default="fp32", show_default=True,
              help="the model timed beside it: int8, fp32 or a .onnx file")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="a train.train checkpoint: adds the PyTorch baselines, eager latency and a plain "
                   "PyTorch script's cold start (needs torch and a checkout installed with pip install -e)")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False),
              help="photo for the preprocessing (scaled to 640x480) and cold-start runs  "
                   "[default: a generated 640x480 scene]")
@click.option("--person", type=click.Path(exists=True, dir_okay=False),
              help="a photo of a person: adds the person path's cost per stage and the webcam pipeline on a "
                   "640x480 clip of it")
@click.option("--threads", type=click.IntRange(1, 64), help="inference threads  [default: onnxruntime's choice]")
@click.option("--runs", type=click.IntRange(50), default=500, show_default=True, help="timed single-image runs per model")
@click.option("--json", "as_json", is_flag=True, help="print the figures as one JSON object")
def bench(model, compare, checkpoint, photo, person, threads, runs, as_json):
    """Time inference, preprocessing, the webcam pipeline and cold starts.

    Every figure is printed beside a baseline measured in the same run, so the ratios hold
    on whatever machine runs it.
    """
    from fashion_edge.bench import BenchError, run_all
    from fashion_edge.images import ImageError
    try:
        results = run_all(model, compare, checkpoint, threads, runs, photo, person)
    except (ImageError, BenchError) as e:  # --photo that is not a usable image, a timed command that failed
        fail(str(e))
    if as_json:
        emit(results)
        return
    from fashion_edge.cpu import summary
    click.echo(f"CPU: {summary(results['cpu'])}")
    inference = results["inference"]
    base_name = list(inference)[-1]
    base = inference[base_name]
    click.echo(f"single-image latency (ms) and batch-64 throughput; ratios against {base_name}")
    for name, r in inference.items():
        click.echo(f"  {name:39} p50 {r['p50']:7.3f}  p90 {r['p90']:7.3f}  p99 {r['p99']:7.3f}   "
                   f"{r['batch_images_per_s']:9.0f} img/s   p50 x{base['p50'] / r['p50']:.2f}  "
                   f"throughput x{r['batch_images_per_s'] / base['batch_images_per_s']:.2f}")
    pre = results["preprocess_640x480_ms"]
    click.echo(f"preprocessing a 640x480 photo, one core: p50 {pre['p50']:.2f} ms  p90 {pre['p90']:.2f} ms  p99 {pre['p99']:.2f} ms")
    many = results["preparation_throughput"]
    click.echo(f"preparing many photos on {many['threads']} threads: {many['photos_per_s']:.0f} photos/s; "
               f"one thread {many['one_thread_photos_per_s']:.0f} photos/s; "
               f"x{many['photos_per_s'] / many['one_thread_photos_per_s']:.2f}")
    print_pipelines(results)
    cold = results["cold_start"]
    line = f"cold start of 'fashion-edge classify PHOTO': {cold['fashion_edge_s']:.3f} s"
    if "ratio" in cold:
        line += f"; plain PyTorch script {cold['pytorch_script_s']:.3f} s; ratio {cold['ratio']:.2f}"
    click.echo(line)


def print_pipelines(results):
    """bench's webcam pipelines and, with --person, the person path's stages."""
    for key, what in (("webcam_pipeline", "a garment"), ("webcam_pipeline_alone", "a garment, --alone"),
                      ("webcam_pipeline_person", "a person")):
        if key in results:
            pipe = results[key]
            click.echo(f"webcam pipeline on a 640x480 video of {what}: {pipe['fps']:.0f} frames/s; per frame "
                       + ", ".join(f"{k} {v:.2f} ms" for k, v in pipe["stage_ms"].items()))
    if "person_path" in results:
        person = results["person_path"]
        click.echo(f"a photo of a person, one core: {person['garments']} garments, {person['total_ms']:.1f} ms "
                   f"({', '.join(f'{k} {v:.2f}' for k, v in person['stage_ms'].items())}); "
                   f"as one garment alone {person['garment_alone_ms']:.1f} ms")


def open_catalog(path, clf):
    """The catalogue at path, made by clf's model; one line and exit 1 where it is not."""
    from fashion_edge.catalog import Catalog, CatalogError
    try:
        return Catalog.open(path, clf)
    except CatalogError as e:
        fail(str(e))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), callback=output_file(),
              help="the catalogue file (.npz); an existing one gets the new and changed photos added")
@click.option("--save-every", type=click.FloatRange(1), default=30, show_default=True,
              help="seconds between saves while indexing; Ctrl-C and SIGTERM save too")
@click.option("--views", type=click.IntRange(1, 10),
              help="views of each photo whose embeddings are averaged, kept in the catalogue for 'similar'  "
                   "[default: 10, or an existing catalogue's]")
@model_option
@click.option("--threads", type=click.IntRange(1, 64), help="as for classify  [default: one per core]")
@click.option("--batch-size", type=click.IntRange(1, 256), default=64, show_default=True, help="as for classify")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="embed on a Ray cluster: 'local' (a Ray instance on this machine), 'auto' (the cluster this "
                   "machine joined with 'ray start'), or ray://HOST:10001; needs fashion-edge[ray]")
@click.option("--workers", type=click.IntRange(1), help="with --ray: Classifier workers  [default: one per CPU]")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object per photo embedded: {path, label, box}, or {path, error}")
def index(inputs, output, save_every, views, model, threads, batch_size, ray_address, workers, as_json):
    """Embed photos into a catalogue for 'similar' and 'webcam --index'.

    \b
      fashion-edge index shop-photos/ --output shop.npz
      fashion-edge similar customer.jpg --index shop.npz

    INPUTS are read as 'classify' reads them (files, folders, globs). Only photos that are new,
    or whose size or modification time changed, are embedded: run the same command again after
    adding photos, or after an interrupted run, and it goes on where it was. A photo that cannot
    be read gets one line on stderr and the rest go on; the exit status is then 1.
    """
    from fashion_edge.catalog import Catalog
    from fashion_edge.images import expand
    if workers and not ray_address:
        raise click.UsageError("--workers sets the Ray workers; add --ray ADDRESS")
    paths = expand(inputs)
    clf = load_classifier(model, threads, views=views or 10)
    catalog = open_catalog(output, clf) if Path(output).exists() else Catalog.create(output, clf)
    if views and views != catalog.views:
        fail(f"{output}: made with --views {catalog.views}; drop --views or write a new catalogue")
    clf.views = catalog.views
    todo, failed = catalog.stale(paths), 0
    embedder = clf if not ray_address else ray_embedder(ray_address, workers, clf)
    try:
        with interruptible():
            for path, error in catalog.update(embedder, todo, batch_size, save_every, Progress("indexing")):
                failed += error is not None
                report_indexed(path, error, catalog, as_json)
    except KeyboardInterrupt:
        fail(f"interrupted: {len(catalog)} photos kept in {output}; run the same command again to go on")
    click.echo(f"{output}: {len(catalog)} photos ({len(todo) - failed} embedded, {len(paths) - len(todo)} "
               f"unchanged, {failed} failed)", err=True)
    sys.exit(1 if failed else 0)


def report_indexed(path, error, catalog, as_json):
    if error is None and as_json:
        emit(catalog.item(catalog.row(path)))
    elif error is not None:
        if as_json:
            emit({"path": str(path), "error": str(error)})
        else:
            click.echo(f"error: {error}", err=True)


def ray_embedder(address, workers, clf):
    from fashion_edge import distributed
    try:
        return distributed.RayEmbedder(address, workers, str(clf.model.path), clf.views)
    except distributed.RayError as e:
        fail(str(e))


class interruptible:
    """SIGTERM raises KeyboardInterrupt inside the block, as Ctrl-C does, so both save and stop."""

    def __enter__(self):
        import signal
        self.previous = signal.signal(signal.SIGTERM, self.interrupt)

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGTERM, self.previous)

    @staticmethod
    def interrupt(signum, frame):
        raise KeyboardInterrupt


@main.command()
@click.argument("queries", nargs=-1, required=True)
@click.option("--index", "catalog_path", required=True, type=click.Path(dir_okay=False),
              help="a catalogue made by 'fashion-edge index'")
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True, help="look-alikes per query")
@click.option("--same-label", is_flag=True, help="only items that have the query's label")
@click.option("--views", type=click.IntRange(1, 10), help="views of each query  [default: the catalogue's]")
@model_option
@click.option("--json", "as_json", is_flag=True,
              help='one JSON object per query: {"query", "results": [{"path", "similarity", "label", "box"}]}')
def similar(queries, catalog_path, top_k, same_label, views, model, as_json):
    """Find the catalogued photos that look most like each query photo.

    \b
      fashion-edge index shop-photos/ --output shop.npz
      fashion-edge similar customer.jpg --index shop.npz --top-k 3
      customer.jpg
        0.97  shop-photos/shirt-041.jpg  Shirt
        ...

    QUERIES are read as 'classify' reads them. Similarity is the cosine of the two photos'
    embeddings: 1 for the same image. The catalogue must have been made with the same --model.
    """
    from fashion_edge.images import ImageError, expand
    paths = expand(queries)
    clf = load_classifier(model)
    catalog = open_catalog(catalog_path, clf)
    clf.views = views or catalog.views
    failed = 0
    for query, found in catalog.similar(clf, paths, top_k, same_label):
        failed += isinstance(found, ImageError)
        if as_json:
            emit({"query": str(query), "error": str(found)} if isinstance(found, ImageError)
                 else {"query": str(query), "results": [hit.to_dict() for hit in found]})
        elif isinstance(found, ImageError):
            click.echo(f"error: {found}", err=True)
        else:
            click.echo(f"{query}" + "".join(f"\n  {h.similarity:.2f}  {h.path}  {h.label}" for h in found))
    sys.exit(1 if failed else 0)


def webcam_lookalikes(catalog_path, clf):
    """webcam --index: the catalogue's look-alikes of each frame (lookalikes.py)."""
    from fashion_edge.lookalikes import Lookalikes
    return Lookalikes(open_catalog(catalog_path, clf))
