"""The KuaiRand adapter: the contract's files with every signal as a label column, nothing dropped silently."""

from __future__ import annotations

import csv
import os

import pytest

from components.example_gen import input_contract
from pipeline import config as config_lib
from pipeline.data import kuairand

LOG_HEADER = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
              "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab\n")
VIDEOS = ("video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,"
          "server_height,music_id,music_type,tag\n"
          "5,77,NORMAL,2022-04-10,Kmovie,0.0,10000.0,720.0,1280.0,99,9.0,\"28,11\"\n"
          "6,78,AD,2022-04-11,LongImport,0.0,,720.0,1280.0,98,4.0,\n")
USERS = "user_id,user_active_degree,onehot_feat0\n1,full_active,3\n2,high_active,\n"


def _write_kuairand(directory, logs):
    os.makedirs(directory, exist_ok=True)
    for name, text in (*logs.items(), (kuairand.VIDEOS_FILE, VIDEOS), (kuairand.USERS_SOURCE_FILE, USERS)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    return str(directory)


def test_exposures_become_events_with_every_signal_and_the_watch_ratio(tmp_path):
    data = _write_kuairand(tmp_path / "raw", {
        "log_standard_4_25_to_4_30_pure.csv": LOG_HEADER + "1,5,20220425,0,1650812741436,1,1,0,0,0,0,1,5000,10000,"
                                                           "0,0,0,0,1\n",
        "log_standard_5_01_to_5_08_pure.csv": LOG_HEADER + "2,6,20220501,5,1651363200999,0,0,0,0,0,1,0,100,0,"
                                                           "0,0,1,0,4\n"
                                                           "2,5,20220501,6,1651363201000,1,0,1,1,0,0,1,25000,10000,"
                                                           "0,0,0,0,4\n"})
    converted = kuairand.convert(data, str(tmp_path / "out"))
    assert (converted.events_written, converted.events_unconverted) == (2, 1)
    labels = {column: "binary" for column in kuairand.SIGNALS} | {kuairand.WATCH_RATIO: "non_negative"}
    events = list(input_contract.read_events(converted.events, input_contract.read_items(converted.items, False),
                                             labels))
    assert [(e.user_id, e.item_id, e.timestamp) for e in events] == [("1", "5", 1650812741), ("2", "5", 1651363201)]
    assert events[0].labels["is_click"] == 1 and events[0].labels["is_like"] == 1
    assert events[0].labels[kuairand.WATCH_RATIO] == 0.5 and events[1].labels[kuairand.WATCH_RATIO] == 2.5
    assert events[1].labels["is_follow"] == events[1].labels["is_comment"] == 1
    # The exposure of a video without a duration is kept, with its reason, in unconverted.csv.
    with open(converted.unconverted, encoding="utf-8") as handle:
        [skipped] = list(csv.DictReader(handle))
    assert (skipped["file"], skipped["line"], skipped["video_id"]) == ("log_standard_5_01_to_5_08_pure.csv", "2", "6")
    assert skipped["reason"] == "no video duration: no watch ratio"
    # The catalogue has no text; the tags are its categories.
    items = input_contract.read_items(converted.items, require_text=False)
    assert items["5"].categories == ("28", "11") and items["5"].title == "" and items["6"].categories == ()
    with pytest.raises(input_contract.InputError, match=r"items.csv: missing required column\(s\) \['title'\]"):
        input_contract.check_input_dir(str(tmp_path / "out"), labels, require_text=True)
    files = input_contract.check_input_dir(str(tmp_path / "out"), labels, require_text=False)
    assert files.ignored_columns["events.csv"] == ["play_time_ms", "tab"]
    with open(converted.users, encoding="utf-8") as handle:
        assert handle.read() == USERS


def test_a_missing_kuairand_column_names_the_file(tmp_path):
    data = _write_kuairand(tmp_path, {"log_standard_4_25_to_4_30_pure.csv": LOG_HEADER.replace("is_like,", "")})
    with pytest.raises(input_contract.InputError, match=r"log_standard_4_25_to_4_30_pure.csv: missing KuaiRand "
                                                        r"column\(s\) \['is_like'\]"):
        kuairand.convert(data, str(tmp_path / "out"))
    with pytest.raises(input_contract.InputError, match="no KuaiRand log"):
        kuairand.convert(str(tmp_path / "out"), str(tmp_path / "out2"))


def test_the_kuairand_source_brings_its_tasks_and_needs_the_text_tower_off():
    loaded = config_lib.from_dict({"data": {"source": "kuairand", "path": "x"}, "text_encoder": {"mode": "off"}})
    assert [task.name for task in loaded.model.tasks] == ["retrieval", "click", "long_view", "like", "follow",
                                                          "comment", kuairand.WATCH_RATIO]
    assert config_lib.label_columns(loaded)[kuairand.WATCH_RATIO] == "non_negative"  # log1p
    with pytest.raises(config_lib.ConfigError, match="text_encoder.mode: KuaiRand has no item text"):
        config_lib.from_dict({"data": {"source": "kuairand", "path": "x"}})


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "kuairand-pure")


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/kuairand-pure is not here")
def test_the_real_kuairand_converts_with_every_exposure_accounted_for(tmp_path):
    converted = kuairand.convert(SHARED, str(tmp_path))
    # 94,784 + 133,545 exposures in the two logs (SOURCE.md): each is an event or an unconverted row.
    assert converted.events_written + converted.events_unconverted == 94_784 + 133_545
    assert converted.events_unconverted < 0.02 * (94_784 + 133_545)
