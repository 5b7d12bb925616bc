#!/usr/bin/env bash
# Build the real-music set from package registries only (Debian + PyPI): music21's bundled corpus rendered
# with FluidSynth and a General MIDI soundfont, simulated edits (some exported with gain, tilt, noise and
# lossy round trips), packed into float16 128-mel shards split by recording.
#
#   bash scripts/build_real_music.sh [OUT_DIR]          # default /work/data/realmusic; run from the repo root
#
# OUT_DIR/music/{train,val}/          the recordings (FLAC, 44.1 kHz stereo, 60-210 s), pieces.json
# OUT_DIR/music/val-other-sf/         the validation pieces rendered with another soundfont (unseen condition)
# OUT_DIR/src/{train,val,val-other-sf}/   simulate-edits output (KEY.raw.flac links, KEY.edl.json, KEY.meta.json,
#                                     KEY.edit.wav for about half of the edits)
# OUT_DIR/shards/{train,val,val-other-sf}/*-%06d.tar + index.json
# OUT_DIR/shards/train-audio/*-%06d.tar   the training recordings as audio shards (pack-audio --store audio)
# OUT_DIR/run-train.json              a run config over the training shards (run for 2 epochs at the end)
#
# Licences: music21 (BSD-3-Clause); its corpus: compositions out of copyright in the US or licensed for use, some
# encodings with non-commercial or other terms stated in the files (music21/corpus/license.txt); FluidSynth
# (LGPL-2.1+, a tool only); TimGM6mb soundfont (GPL-2); MuseScore General soundfont (MIT). Keep the data out of git.
set -euo pipefail
OUT=${1:-/work/data/realmusic}
SEED=${SEED:-0}
WORKERS=${WORKERS:-2}
TRAIN_SF=/usr/share/sounds/sf2/TimGM6mb.sf2
OTHER_SF=/usr/share/sounds/sf3/MuseScore_General.sf3

if ! command -v fluidsynth >/dev/null || [ ! -f "$TRAIN_SF" ] || [ ! -f "$OTHER_SF" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        fluidsynth timgm6mb-soundfont musescore-general-soundfont-small
fi
python -c "import music21" 2>/dev/null || python -m pip install -q 'music21>=9'
python -c "import soundfile, soxr, librosa" 2>/dev/null || python -m pip install -q -e '.[audio]'

start=$(date +%s)
python scripts/render_corpus.py "$OUT/music" --count 64 --val-every 4 --soundfont "$TRAIN_SF" --workers "$WORKERS"
python scripts/render_corpus.py "$OUT/music/other-sf" --pieces "$OUT/music/pieces.json" --only-split val \
    --soundfont "$OTHER_SF" --workers "$WORKERS"
rendered=$(date +%s)

for split in train val; do
    python -m pipelines simulate-edits "$OUT/music/$split" "$OUT/src/$split" --seed "$SEED" --export-fraction 0.5
done
python -m pipelines simulate-edits "$OUT/music/other-sf/val" "$OUT/src/val-other-sf" --seed "$SEED" \
    --export-fraction 0.5
simulated=$(date +%s)

for split in train val val-other-sf; do
    rm -rf "$OUT/shards/$split"
    python -m pipelines pack-audio "$OUT/src/$split" "$OUT/shards/$split/$split-%06d.tar" --workers "$WORKERS" \
        --max-samples 8
    python -m pipelines check "$OUT/shards/$split/"*.tar --no-progress
done
# the training recordings as audio shards too, for validate --protocol audio (--train-audio)
rm -rf "$OUT/shards/train-audio"
python -m pipelines pack-audio "$OUT/src/train" "$OUT/shards/train-audio/train-%06d.tar" --store audio \
    --workers "$WORKERS" --max-samples 8
python -m pipelines check "$OUT/shards/train-audio/"*.tar --no-progress
packed=$(date +%s)

# a run over the training shards (paths in a config are relative to it)
n_train=$(ls "$OUT/shards/train/"*.tar | wc -l)
cat > "$OUT/run-train.json" <<JSON
{
    "seed": 0,
    "source": {"urls": "shards/train/train-{000000..$(printf %06d $((n_train - 1)))}.tar", "mel_dtype": "float16"},
    "augmentation": {
        "enabled": true,
        "noise": {"enabled": true, "probability": 0.5, "level_min": 0.5, "level_max": 2.0},
        "spec_augment": {"enabled": true, "probability": 0.5, "freq_masks": 1, "freq_width": 16,
                         "time_masks": 2, "time_width": 40},
        "crop": {"enabled": true, "probability": 1.0, "min_len": 400, "max_len": 1000}
    },
    "shuffle": {"buffer_size": 16},
    "batching": {"batch_size": 8}
}
JSON
python -m pipelines run "$OUT/run-train.json" --epochs 2 --workers 2 --no-progress
echo "build_real_music: render $((rendered - start)) s, simulate-edits $((simulated - rendered)) s," \
     "pack-audio + check $((packed - simulated)) s"
