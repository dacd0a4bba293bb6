"""Mock official downloads: tiny videos written by the project's writer inside each data set's published
annotation format (UCF-101, HMDB-51, Kinetics, HACS, Moments in Time, Diving-48, Something-Something v2, and
plain class folders). Each builder writes ``src`` (videos) and ``ann`` (annotations) and returns what a correct
preparation must find: the classes in official order, and the train/val (label, id) pairs."""
from __future__ import annotations

import json
from pathlib import Path

from datagen import write_clip


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _ucf101(src: Path, ann: Path) -> dict:
    lists = ann / "ucfTrainTestlist"
    _write(lists / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    _write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                      "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n")
    _write(lists / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                                     "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    _write(lists / "trainlist02.txt", "YoYo/v_YoYo_g01_c01.avi 3\n")
    for i, rel in enumerate(["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
                             "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                             "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                             "HandstandPushups/v_HandStandPushups_g01_c01.avi"]):
        write_clip(src / "UCF-101" / rel, seed=i)
    return {"classes": ["ApplyEyeMakeup", "HandstandPushups", "YoYo"],
            "train": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g08_c01"),
                      ("HandstandPushups", "v_HandStandPushups_g08_c01")],
            "val": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01"), ("HandstandPushups", "v_HandStandPushups_g01_c01")]}


def _hmdb51(src: Path, ann: Path) -> dict:
    splits = ann / "testTrainMulti_7030_splits"
    _write(splits / "wave_test_split1.txt", "w1.avi 1\nw2.avi 2\nw3.avi 0\n")
    _write(splits / "brush_hair_test_split1.txt", "b1.avi 1 \nb2.avi 2 \n")
    _write(splits / "brush_hair_test_split2.txt", "b1.avi 2\nb2.avi 1\n")
    for i, rel in enumerate(["wave/w1.avi", "wave/w2.avi", "wave/w3.avi", "brush_hair/b1.avi", "brush_hair/b2.avi"]):
        write_clip(src / rel, seed=i)
    return {"classes": ["brush_hair", "wave"], "train": [("brush_hair", "b1"), ("wave", "w1")],
            "val": [("brush_hair", "b2"), ("wave", "w2")]}


def _kinetics(src: Path, ann: Path) -> dict:
    header = "label,youtube_id,time_start,time_end,split\n"
    _write(ann / "train.csv", header + "abseiling,abc,1,3,train\nair drumming,xyz,1,2,train\n")
    _write(ann / "validate.csv", header + "abseiling,def,0,1,val\nair drumming,gone,0,10,val\n")
    write_clip(src / "train" / "abseiling" / "abc_000001_000003.mp4", frames=20)  # trimmed: used whole
    write_clip(src / "xyz.mkv", frames=30, seed=1)  # full video: cut to [1, 2) s = 10 frames
    write_clip(src / "val" / "def.MP4", frames=30, seed=2)
    return {"classes": ["abseiling", "air drumming"], "train": [("abseiling", "abc"), ("air drumming", "xyz")],
            "val": [("abseiling", "def")], "frames": {"abseiling/abc_000001_000003": 20,
                                                     "air drumming/xyz_000001_000002": 10,
                                                     "abseiling/def_000000_000001": 10}}


def _hacs(src: Path, ann: Path) -> dict:
    _write(ann / "HACS_clips_v1.1.csv", "classname,youtube_id,subset,start,end,label\n"
           "Archery,aa,training,0.2,0.6,1\nArchery,aa,training,0.5,0.9,1\nBowling,bb,training,0,1,-1\n"
           "Bowling,bb,validation,1,2,1\nBowling,cc,testing,0,1,1\n")
    write_clip(src / "training" / "Archery" / "v_aa.mp4", frames=10)
    write_clip(src / "validation" / "Bowling" / "v_bb.mp4", frames=30, seed=1)
    return {"classes": ["Archery", "Bowling"], "train": [("Archery", "aa"), ("Archery", "aa")],
            "val": [("Bowling", "bb")], "frames": {"Archery/aa_000000_000000_ms000200_000600": 4,
                                                  "Archery/aa_000000_000000_ms000500_000900": 4,
                                                  "Bowling/bb_000001_000002": 10}}


def _mit(src: Path, ann: Path) -> dict:
    _write(ann / "moments_categories.txt", "running,0\nclapping,1\n")
    _write(ann / "trainingSet.csv", "clapping/yt-a_1.mp4,clapping,3,0\nrunning/flickr-b.mp4,running,2,1\n")
    _write(ann / "validationSet.csv", "clapping/yt-c_2.mp4,clapping,3,0\n")
    for i, rel in enumerate(["training/clapping/yt-a_1.mp4", "training/running/flickr-b.mp4",
                             "validation/clapping/yt-c_2.mp4"]):
        write_clip(src / rel, seed=i)
    return {"classes": ["running", "clapping"], "train": [("clapping", "yt-a_1"), ("running", "flickr-b")],
            "val": [("clapping", "yt-c_2")]}


def _diving48(src: Path, ann: Path) -> dict:
    _write(ann / "Diving48_vocab.json", json.dumps([["Back", "15som", "05Twis", "FREE"],
                                                    ["Forward", "25som", "NoTwis", "PIKE"]]))
    _write(ann / "Diving48_V2_train.json", json.dumps([
        {"vid_name": "-mmq0PT-u8k_00155", "label": 1, "start_frame": 0, "end_frame": 58},
        {"vid_name": "zzz_00001", "label": 0, "start_frame": 3, "end_frame": 40}]))
    _write(ann / "Diving48_V2_test.json", json.dumps([{"vid_name": "val_00002", "label": 0, "start_frame": 0,
                                                       "end_frame": 9}]))
    for i, name in enumerate(["-mmq0PT-u8k_00155", "zzz_00001", "val_00002"]):
        write_clip(src / "rgb" / f"{name}.mp4", seed=i)  # one flat folder
    return {"classes": ["Back_15som_05Twis_FREE", "Forward_25som_NoTwis_PIKE"],
            "train": [("Back_15som_05Twis_FREE", "zzz_00001"), ("Forward_25som_NoTwis_PIKE", "-mmq0PT-u8k_00155")],
            "val": [("Back_15som_05Twis_FREE", "val_00002")]}


def _ssv2(src: Path, ann: Path) -> dict:
    comma = "Putting something, something and something on the table"
    _write(ann / "labels.json", json.dumps({"Pushing something from left to right": "0", comma: "1"}))
    _write(ann / "train.json", json.dumps([
        {"id": "101", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "102", "label": "putting a, b and c on the table",
         "template": "Putting [something], [something] and [something] on the table",
         "placeholders": ["a", "b", "c"]}]))
    _write(ann / "validation.json", json.dumps([
        {"id": "201", "label": "x", "template": "Pushing [something] from left to right", "placeholders": ["x"]}]))
    for i, vid in enumerate(["101", "102", "201"]):
        write_clip(src / "20bn-something-something-v2" / f"{vid}.webm", seed=i)
    return {"classes": ["Pushing something from left to right", comma],
            "train": [("Pushing something from left to right", "101"), (comma, "102")],
            "val": [("Pushing something from left to right", "201")]}


def _folders(src: Path, ann: Path) -> dict:
    for c, label in enumerate(["cat", "dog", "owl"]):
        for i in range(3):
            write_clip(src / label / f"{label}{i}{['.mp4', '.avi', '.mkv'][i]}", seed=3 * c + i)
    return {"classes": ["cat", "dog", "owl"], "train": None, "val": None}


MOCKS = {"ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "hacs": _hacs, "mit": _mit,
         "diving48": _diving48, "ssv2": _ssv2, "folders": _folders}
