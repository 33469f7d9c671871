"""Folder-per-class photo sets (such as clothing-dataset-small) and their mapping to class ids.

A mapping file is a markdown table whose first column names one or more folders and whose
last column lists the acceptable class ids ("2 Pullover, 6 Shirt"), or none when no class
fits (those photos should come back "unknown"). The set's README.md usually holds it. A
.json mapping file is an object instead: {"folder": [class ids or names], ...}, [] where none fits.
"""
import json
import re
from pathlib import Path


from fashion_edge import images
from fashion_edge.dataset import LABELS

COARSE = {"tops": {0, 2, 4, 6}, "trousers": {1}, "dress": {3}, "footwear": {5, 7, 9}, "bag": {8}}


class PhotoSetError(Exception):
    pass


def read_mapping(folder, mapping_file=None):
    """{folder name: sorted list of acceptable class ids (empty: out of distribution)}."""
    folder = Path(folder)
    mapping_file = Path(mapping_file or folder / "README.md")
    try:
        text = mapping_file.read_text(encoding="utf-8")
    except OSError as e:
        raise PhotoSetError(f"{mapping_file}: cannot read the class mapping ({e.strerror}); a photo set needs a "
                            "README.md table of its folders' class ids, or eval's --mapping FILE") from None
    as_json = mapping_file.suffix.lower() == ".json"
    rows = json_rows(text, mapping_file) if as_json else table_rows(text)
    mapping = {name: ids for name, ids in rows.items() if (folder / name).is_dir()}
    if not mapping:
        raise PhotoSetError(f"{mapping_file}: no {'key' if as_json else 'table row'} names a sub-folder of {folder} "
                            "with class ids; see 'fashion-edge eval --help' for the format")
    return mapping


def table_rows(text):
    """{folder: ids} from a markdown table's rows: folder(s) | ... | '2 Pullover, 6 Shirt' or 'none'."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        ids = sorted({int(i) for i in re.findall(r"\b(\d)\s+[A-Za-z]", cells[-1])})
        if ids or cells[-1].lower().startswith("none"):
            rows.update((name.strip(), ids) for name in cells[0].split(","))
    return rows


def json_rows(text, source):
    """{folder: ids} from a JSON object {"folder": [class ids or names], ...}; [] where no class fits."""
    expected = 'expected {"folder": [class ids 0-9 or names such as "Shirt"], ...} with [] where no class fits'
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise PhotoSetError(f"{source}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                            f"{expected}") from None
    if not isinstance(rows, dict) or not all(isinstance(v, list) for v in rows.values()):
        raise PhotoSetError(f"{source}: {expected}")
    mapping = {}
    for folder, classes in rows.items():
        ids = [class_id(c) for c in classes]
        if None in ids:
            bad = classes[ids.index(None)]
            raise PhotoSetError(f"{source}: {folder}: {json.dumps(bad)} is not a class id 0-9 or one of "
                                f"{', '.join(LABELS)}")
        mapping[folder] = sorted(set(ids))
    return mapping


def class_id(value):
    """A class id from a JSON mapping's 3 or "Dress" (any case); None for anything else."""
    if isinstance(value, str):
        return next((i for i, label in enumerate(LABELS) if label.lower() == value.lower()), None)
    return value if type(value) is int and 0 <= value < len(LABELS) else None  # not True, which is an int


def list_photos(folder, mapping):
    """[(path, acceptable ids)] for every image file in the mapped folders, sorted."""
    folder = Path(folder)
    return [(path, ids) for name, ids in sorted(mapping.items())
            for path in images.expand([str(folder / name)])]


def coarse_group(class_id):
    return next((g for g, ids in COARSE.items() if class_id in ids), None)


def read_people_labels(folder):
    """{photo name: {"main": garment, "garments": [garment, ...]}} from FOLDER/labels.json, each garment
    {"class_ids": [...], "box": [x, y, w, h], "area": share of the photo}, as street-photos has."""
    path = Path(folder) / "labels.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PhotoSetError(f"{path}: cannot read the garment labels ({e.strerror}); photos of people need "
                            "FOLDER/labels.json and FOLDER/photos/ (see 'fashion-edge eval --help')") from None
    except json.JSONDecodeError as e:
        raise PhotoSetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); see 'fashion-edge eval --help'") from None
    if not isinstance(labels, dict) or not all(isinstance(v, dict) and "garments" in v and "main" in v
                                               for v in labels.values()):
        raise PhotoSetError(f"{path}: expected {{\"NAME.jpg\": {{\"main\": GARMENT, \"garments\": [GARMENT, ...]}}, ...}} "
                            "with each GARMENT {\"class_ids\": [...], \"box\": [x, y, w, h], \"area\": share}")
    return labels
