#!/bin/sh
# The real-voice set for scripts/bench_voices.py: crowd-sourced recordings of real people from
# Picovoice's public benchmarks (Apache-2.0), converted to 16 kHz mono WAV.
#   DIR/wake/      329 people saying "Alexa"      (Picovoice/wake-word-benchmark, audio/alexa)
#   DIR/commands/  619 spoken coffee-maker orders (Picovoice/speech-to-intent-benchmark,
#                  data/speech/clean; 50+ speakers)
# Needs git and sox (with FLAC: Debian's sox and libsox-fmt-all). Fourteen of the "Alexa" FLAC
# files are damaged in the repository; sox keeps what decodes (1.5-3.3 s each) and says so.
#
#   sh scripts/get_voices.sh DIR
set -eu
dir=${1:?usage: get_voices.sh DIR}
mkdir -p "$dir/wake" "$dir/commands" "$dir/src"
for repo in wake-word-benchmark speech-to-intent-benchmark; do
    [ -d "$dir/src/$repo" ] || git clone --depth 1 "https://github.com/Picovoice/$repo" "$dir/src/$repo"
done
for f in "$dir"/src/wake-word-benchmark/audio/alexa/*.flac; do
    sox "$f" -r 16000 -c 1 -b 16 "$dir/wake/$(basename "$f" .flac).wav" 2>/dev/null ||
        echo "get_voices: $f decoded in part" >&2
done
for f in "$dir"/src/speech-to-intent-benchmark/data/speech/clean/*.wav; do
    sox "$f" -r 16000 -c 1 -b 16 "$dir/commands/$(basename "$f")"
done
echo "$(ls "$dir/wake" | wc -l) wake words, $(ls "$dir/commands" | wc -l) commands in $dir"
