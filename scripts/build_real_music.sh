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
#
# Licences: music21 corpus (BSD-3 code; the scores are public domain or as music21's corpus README states per
# piece), FluidSynth (LGPL-2.1, used as a tool), TimGM6mb soundfont (GPL-2), MuseScore General soundfont (MIT).
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
packed=$(date +%s)
echo "build_real_music: render $((rendered - start)) s, simulate-edits $((simulated - rendered)) s," \
     "pack-audio + check $((packed - simulated)) s"
