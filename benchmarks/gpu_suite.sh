#!/usr/bin/env bash
# The GPU measurements behind the committed results, in parts of under ten minutes each, for one
# NVIDIA GPU on a machine without internet (fill .whl/ first with benchmarks/fetch_gpu_wheels.sh and
# copy it along). Results land in benchmarks/results/ (and in $OUT when that is set).
#
#     bash benchmarks/gpu_suite.sh 1   # environment throughput, memory modules, sharding cost
#     bash benchmarks/gpu_suite.sh 2   # end-to-end PPO against memorax; T-Maze learning curves
#     bash benchmarks/gpu_suite.sh 3   # Ballet (HCAM vs TrXL vs GRU) and context editing (DCPO vs PPO)
#     bash benchmarks/gpu_suite.sh 4   # Memory Gym throughput and learning curves
#     bash benchmarks/gpu_suite.sh 5   # Ballet with 2 and 4 dancers (merged into the Ballet report)
#     bash benchmarks/gpu_suite.sh 6   # Memory Gym learning curves, symbolic observations
#     bash benchmarks/gpu_suite.sh 7   # the rest of the T-Maze grid (L = 500, 1000; merged into its report)
#     bash benchmarks/gpu_suite.sh 8   # context editing at the medium scale, where learning starts to fail
#     bash benchmarks/gpu_suite.sh 9   # runs that parts 5-7 left for time (merged into their reports)
#     bash benchmarks/gpu_suite.sh 10  # the context-editing cell that part 8 left for time
#     bash benchmarks/gpu_suite.sh 11  # Transformer-XL on T-Maze L = 1000
#     bash benchmarks/gpu_suite.sh 12  # cost of minGRU, S5, Mamba and RATE next to FFM (merged into its report)
#     bash benchmarks/gpu_suite.sh 13  # two GPUs of one host: scaling and same parameters, three agents
#     bash benchmarks/gpu_suite.sh 14  # active T-Maze L = 100 with the start-state curriculum
#     bash benchmarks/gpu_suite.sh 15  # CountRecall-Easy and RepeatFirst-Medium GRU, diagnostics preset as it ships
#     bash benchmarks/gpu_suite.sh 16  # symbolic Mortar Mayhem Grid beside memorax, 85 M steps (2 GPUs: 6 minutes)
#     bash benchmarks/gpu_suite.sh 17  # the same with memorax's constant learning rate
#     bash benchmarks/gpu_suite.sh 18  # passive T-Maze L = 1000 with the near-start curriculum (2 GPUs)
#     bash benchmarks/gpu_suite.sh 20  # TrXL and HCAM cost; pixel PPO on 1 and 2 GPUs (two GPUs)
#     bash benchmarks/gpu_suite.sh 21  # LeCun init beside memorax; symbolic Mortar Mayhem Grid, memory_gym preset
#     bash benchmarks/gpu_suite.sh 22  # LeCun by default: active T-Maze L = 100 on 1 and 2 GPUs; CountRecall-Easy
#     bash benchmarks/gpu_suite.sh 23  # LeCun by default: RepeatFirst-Medium, passive T-Maze L = 100
#     bash benchmarks/gpu_suite.sh 24  # pixel PPO on 1 and 2 GPUs after the encoder fix (two GPUs)
#     bash benchmarks/gpu_suite.sh 25  # memory_gym preset with LeCun; the missing diagnostics cells (two GPUs)
#     bash benchmarks/gpu_suite.sh 26  # passive T-Maze L = 100 LSTM and TrXL; L = 1000 near starts (two GPUs)
#     bash benchmarks/gpu_suite.sh 27  # what part 26 left for time; PPO throughput against scan unrolling
#     bash benchmarks/gpu_suite.sh 28  # part 25 again with unrolled loops, more diagnostics cells (two GPUs)
#     bash benchmarks/gpu_suite.sh 29  # memory_gym preset with the barrier; Mamba's chunked scan; diagnostics
#     bash benchmarks/gpu_suite.sh 30  # Mortar Mayhem Grid (symbolic) to 1.64e8 steps, one piece per call
#     bash benchmarks/gpu_suite.sh 31  # memorax's rows beside mnemax on T-Maze L = 100 and RepeatPrevious-Easy
#     bash benchmarks/gpu_suite.sh 32  # mnemax's rows of the same
#     bash benchmarks/gpu_suite.sh 33  # where a PPO update's time goes; the CNN's convolutions as lax.conv or patches
#     bash benchmarks/gpu_suite.sh 34  # pixel Mortar Mayhem Grid to 1.64e8 steps, one piece per call; a GIF at the end
#     bash benchmarks/gpu_suite.sh 35  # mamba2 against FFM and mamba; min_gru and s5 on two diagnostics (two GPUs:
#     bash benchmarks/gpu_suite.sh 36  # with 36) mamba and mamba2 on the same diagnostics
#     bash benchmarks/gpu_suite.sh 37  # Ballet, supervised: can each memory learn which dancer did the asked dance
#     bash benchmarks/gpu_suite.sh 38  # RATE on passive T-Maze L = 100 (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 39  # passive T-Maze L = 1000 on two GPUs (two GPUs)
#     bash benchmarks/gpu_suite.sh 40  # Ballet, 2 dancers, 1e8 steps: S5 and TrXL (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 41  # PPO update time with bf16 compute and with the GRU's own backward pass
#     bash benchmarks/gpu_suite.sh 42  # Ballet probes with a ReLU read-out after the memory, as the agents have
#     bash benchmarks/gpu_suite.sh 43  # the Ballet binding probe with twice the episodes, S5 and TrXL (two GPUs)
#     bash benchmarks/gpu_suite.sh 44  # compile time of every registered id's vmapped step and reset
#     bash benchmarks/gpu_suite.sh 45  # where a pixel TrXL PPO update's time goes, f32 and bf16; GRU bf16 + lax.conv
#     bash benchmarks/gpu_suite.sh 46  # Ballet, 2 dancers, S5 at 1e9 steps (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 47  # the diagnostics grid's missing cells, several processes per GPU
#     bash benchmarks/gpu_suite.sh 48  # Ballet with the recipe of T-Maze and Mortar Mayhem Grid, S5 and GRU
#     bash benchmarks/gpu_suite.sh 49  # HCAM's cost in parts beside dense TrXL; Mamba-2's chunk size
#     bash benchmarks/gpu_suite.sh 50  # PPO update time with XLA's command buffers (CUDA graphs) over while loops
#     bash benchmarks/gpu_suite.sh 51  # symbolic Mortar Mayhem Grid with FFM, minGRU and S5 (parallel scans)
#     bash benchmarks/gpu_suite.sh 52  # Memory Gym throughput after the speed-ups, without and with the reset pool
#     bash benchmarks/gpu_suite.sh 53  # context editing at full size with a two-stage curriculum (DCPO, PPO)
#     bash benchmarks/gpu_suite.sh 54  # context editing at full size, PPO then DCPO from PPO's network
#     bash benchmarks/gpu_suite.sh 55  # the same with part 53's curriculum in PPO's stage
#     bash benchmarks/gpu_suite.sh 56  # pixel Mystery Path and Mortar Mayhem Grid update time with and without the reset pool
#     bash benchmarks/gpu_suite.sh 57  # part 55's recipe at other sizes and tasks (TASK, BUDGET, STREAM)
#     bash benchmarks/gpu_suite.sh 58  # Mamba-2's cost against FFM by chunk length
#     bash benchmarks/gpu_suite.sh 59  # the endless Memory Gym tasks' throughput, without and with the reset pool
#     bash benchmarks/gpu_suite.sh 60  # Mamba-2's chunk states by one matrix product against the scan, beside FFM
#     bash benchmarks/gpu_suite.sh 61  # RATE on the two diagnostics with targets (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 62  # HCAM and dense TrXL at T = 16384, and HCAM's ways of reading its chunks
#     bash benchmarks/gpu_suite.sh 63  # HCAM and dense TrXL again, with the MLP's GELU and long sequences' short-window attention recomputed
#     bash benchmarks/gpu_suite.sh 64  # the first PPO update of a linear-attention diagnostics cell under XLA's autotuning settings
#     bash benchmarks/gpu_suite.sh 65  # symbolic Mortar Mayhem Grid beside memorax: mnemax with memorax's init and structure
#     bash benchmarks/gpu_suite.sh 66  # the T-Maze targets again within their budgets (now rounded down), side by side
#     bash benchmarks/gpu_suite.sh 67  # Mamba's cost against FFM by the length of its scan's pieces
#     bash benchmarks/gpu_suite.sh 68  # part 45's TrXL profile with the keys and values held in the carry
#     bash benchmarks/gpu_suite.sh 69  # the TrXL profile with a 32-step window beside the preset's 118
#     bash benchmarks/gpu_suite.sh 70  # the TrXL profile with the ring, and kernel traces (~400 s: a call of its own)
#     bash benchmarks/gpu_suite.sh 71  # pixel GRU and TrXL, 3 seeds, bf16, the CNN's block patches, kernel traces
#     bash benchmarks/gpu_suite.sh 72  # HCAM's cost with the dense read over the chunks a block may see
#     bash benchmarks/gpu_suite.sh 73  # Mamba's blocked scan against its associative one
#     bash benchmarks/gpu_suite.sh 74  # TrXL PPO on the vector tasks at 8192 envs, GRU beside it
#     bash benchmarks/gpu_suite.sh 75  # Ballet binding probe: the spots encoder against the agents' MLP
#     bash benchmarks/gpu_suite.sh 76  # Ballet binding probe: the layout-free conv encoder; HCAM's window, chunks
#     bash benchmarks/gpu_suite.sh 77  # Ballet binding probe: HCAM's chunk read (places in a chunk, chunks of 4)
#     bash benchmarks/gpu_suite.sh 78  # RATE's other diagnostics cells, side by side (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 79  # Ballet binding probe with 4 dancers, where no second-dance shortcut answers
#     bash benchmarks/gpu_suite.sh 80  # pixel PPO end to end beside memorax, the Memory Gym preset's sizes
#     NUM_ENVS=128 bash benchmarks/gpu_suite.sh 81  # pixel PPO vs memorax on Mystery Path with the reset pool
#     bash benchmarks/gpu_suite.sh 82  # where RATE's PPO update goes (diagnostics preset), after its one-pass blocks
#     bash benchmarks/gpu_suite.sh 83  # HCAM against dense TrXL at T = 1024 and 4096, its read blocks grouped
#     bash benchmarks/gpu_suite.sh 84  # Ballet-2-Delay16, TrXL with the items encoder, 1e8 steps (resumable in pieces)
#     bash benchmarks/gpu_suite.sh 85  # the same with entropy bonuses 0.03, 0.1, 0.1 on answer steps, side by side
#     bash benchmarks/gpu_suite.sh 86  # Ballet-2-Delay16 with the items encoder's present form: TrXL, HCAM, 1e8 steps
#     PACK_RUNS=1 bash benchmarks/gpu_suite.sh 87  # HCAM on it, 3 seeds at 2e8 steps (RUNS_FROM=DIR goes on)
#     bash benchmarks/gpu_suite.sh 88  # LRU's forward + backward cost beside FFM and S5
#     PACK_RUNS=1 bash benchmarks/gpu_suite.sh 89  # Ballet-4-Delay48 / 8-Delay48, HCAM and TrXL, 5e8 steps
#     PACK_RUNS=1 bash benchmarks/gpu_suite.sh 91  # Ballet's curriculum: HCAM on 4-Delay16 from the 2-Delay16 run (87)
#     bash benchmarks/gpu_suite.sh 90  # pixel PPO's update with 128-step BPTT sequences
#     PACK_RUNS=1 bash benchmarks/gpu_suite.sh 92  # object permanence, 4 then 8 boxes, HCAM (RUNS: TrXL)
#     bash benchmarks/gpu_suite.sh 93  # where HCAM's Ballet update spends its time (ppo_profile --runs)
#     PACK_RUNS=1 bash benchmarks/gpu_suite.sh 94  # Ballet-2-Delay16 with LRU, HCAM's recipe, 3 seeds at 2e8 steps
#     bash benchmarks/gpu_suite.sh 95  # why PPO with LRU misses Ballet-2-Delay16: seven changes, 3 seeds at 1e8 each
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:?which part: 1, 2, 3 or 4}
label=${LABEL:-}
export PYTHONUNBUFFERED=1

if [ -d .whl ]; then
    # the pinned list (fetch_gpu_wheels.sh fills .whl from it); without memorax's wheels, mnemax's section
    # of it alone (enough for the parts that run no memorax)
    if ls .whl/memorax-*.whl > /dev/null 2>&1; then cat benchmarks/gpu_wheels.txt; else sed '/^# memorax/,$d' benchmarks/gpu_wheels.txt; fi |
        python3 -m pip install -q --no-index --no-deps --find-links .whl -r /dev/stdin || exit 1
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1
# A long run moves between machines through its checkpoint: PACK_RUNS=1 leaves the runs of runs/gpu that this
# command trained in $OUT as parts under 16 MiB (pack_runs), and RUNS_FROM="DIR ...", the folders such parts
# were put in, unpacks them here first (a run that goes on from another, init_from, needs that one here too)
# Each command updates the report it was given; the learning reports of several commands (each in its
# results.tgz) join with learning_curves.py --merge-from
for dir in ${RUNS_FROM:-}; do cat "$dir"/runs-gpu.tgz.part-* | tar xzf - || exit 1; done
started=$(mktemp)  # files of runs/gpu newer than this were written by this command (tar keeps the older times)
flag=${label:+--device-label $label}
# Compiled programs of resumable learning runs, kept beside their checkpoints (paths from benchmarks/)
jax_cache=${JAX_COMPILATION_CACHE_DIR:-../runs/jax-cache}

run() {  # one benchmark; a failure is reported and the next one still runs
    echo "=== $* ($(date +%T))"
    timeout "$1" python3 "${@:2}"
    local code=$?
    if [ "$code" -eq 124 ]; then  # SIGTERM at the limit: a resumable run has checkpointed and stopped
        echo "=== stopped at its time limit ($1 s): $*"
    elif [ "$code" -ne 0 ]; then
        echo "=== failed (exit code $code): $*"
    fi
}

piece() {  # PRESET RUN SEEDS SECONDS: one piece of a long learning run (part 30 says how pieces work); the
    # trainer stops itself before a log interval would overrun SECONDS - 60 (start-up and the end's evaluation
    # take the rest), and the outer timeout stays as a backstop. Compiled programs are kept in runs/jax-cache
    # beside the checkpoints, so the next piece on the same machine skips compiling (~70 s for TrXL's
    # rollout and update)
    local seconds=${TRAIN_SECONDS:-$4}
    JAX_COMPILATION_CACHE_DIR=$jax_cache run "$seconds" learning_curves.py --preset "$1" --runs "$2" \
        --seeds "${SEEDS:-$3}" --first-seed "${FIRST_SEED:-0}" --max-seconds 10 --time-limit $((seconds - 60)) \
        --run-dir ../runs/gpu ${STEPS_SCALE:+--steps-scale $STEPS_SCALE} --resume --update $flag
}

side_by_side() {  # PRESET SECONDS RUN...: runs of PRESET in one process each on the one GPU (a small run, such
    # as a diagnostics cell's 32 copies, leaves the GPU idle between kernels, so sharing it costs each little),
    # resumable in pieces: each stops with a checkpoint in ../runs/gpu before SECONDS - 60, and the same command
    # continues it; SEEDS (default the script's 3) and STEPS_SCALE as in piece
    local preset=$1 seconds=$2 name
    shift 2
    for name in "$@"; do
        XLA_PYTHON_CLIENT_PREALLOCATE=false run "$seconds" learning_curves.py --preset "$preset" --runs "$name" \
            --max-seconds 10 --time-limit $((seconds - 60)) --run-dir ../runs/gpu --resume --update $flag \
            ${SEEDS:+--seeds $SEEDS} ${STEPS_SCALE:+--steps-scale $STEPS_SCALE} > "/tmp/side-$name.log" 2>&1 &
    done
    wait
    for name in "$@"; do cat "/tmp/side-$name.log"; done
}

curriculum() {  # PRESET SECONDS RUN...: a chain of runs, each started from the one before (init_from), in one
    # process within SECONDS: the runs the report holds measured are passed over, the first unfinished one goes
    # on from its checkpoint in ../runs/gpu, and one that ends leaves the rest of the time to the next (none is
    # started with under 4 minutes left: compiling and a first log interval take most of that). The same
    # command continues the chain; SEEDS (default 3) as in piece
    # A run that has trained all its steps here is passed over too, although this machine's copy of the report
    # may not hold it (it was recorded by an earlier command): resuming it would only evaluate it again.
    local preset=$1 seconds=$2 runs
    runs=$(unfinished "${@:3}")
    if [ -z "$runs" ]; then echo "=== every run of the chain has trained all its steps"; return; fi
    JAX_COMPILATION_CACHE_DIR=$jax_cache run "$seconds" learning_curves.py --preset "$preset" --runs $runs \
        --seeds "${SEEDS:-3}" --max-seconds $((seconds > 250 ? seconds - 240 : 10)) --time-limit $((seconds - 60)) \
        --run-dir ../runs/gpu --resume --update --pending $flag
}

unfinished() {  # RUN...: those of the runs that have not trained all their steps in ../runs/gpu (or are not there)
    python3 -c 'import sys; from pathlib import Path; from common import run_progress
done = lambda path: path.is_dir() and (lambda trained, total: trained >= total)(*run_progress(path))
print(" ".join(name for name in sys.argv[1:] if not done(Path("../runs/gpu", name))))' "$@"
}

preset_runs() {  # PRESET WORD: the names of PRESET's runs that hold WORD, in the preset's order
    python3 -c 'import sys; from learning_curves import PRESETS
print(" ".join(spec["name"] for spec in PRESETS[sys.argv[1]] if sys.argv[2] in spec["name"]))' "$1" "$2"
}

gallery_gif() {  # RUN NAME STEPS: when run RUN of --run-dir ../runs/gpu has trained all its steps, a GIF of
    # a greedy rollout of its first seed, ../docs/gallery/NAME-agent-seed-K.gif (mnemax-eval evaluates it again)
    local dir=../runs/gpu/$1
    if [ "${FIRST_SEED:-0}" != 0 ]; then dir=$dir-from-seed-$FIRST_SEED; fi  # learning_curves.py's naming
    if [ -n "$(unfinished "$(basename "$dir")")" ]; then
        echo "=== no GIF: $dir has not trained all its steps"; return
    fi
    timeout 300 mnemax-eval --run "$dir" --videos 1 --video-steps "$3" --video-format gif --video-dir /tmp/gifs &&
        mv "/tmp/gifs/$(basename "$dir")-eval-0.gif" "../docs/gallery/$2-agent-seed-${FIRST_SEED:-0}.gif"
}

pack_runs() {  # the runs of ../runs/gpu this command trained into $OUT in parts of 15 MiB: each run's logs and
    # latest checkpoint (the checkpointer keeps two; the older would only double the size), enough for --resume
    # to go on elsewhere. Runs unpacked from RUNS_FROM and not trained here stay out: the caller has them.
    local runs=() skip=() run step
    for run in ../runs/gpu/*; do
        if [ -n "$(find "$run" -newer "$started" -print -quit)" ]; then runs+=("${run#../}"); fi
    done
    if [ "${#runs[@]}" -eq 0 ]; then echo "=== no run of runs/gpu trained: nothing to pack"; return; fi
    for run in "${runs[@]}"; do
        for step in $(ls "../$run/checkpoints" 2> /dev/null | grep -E '^[0-9]+$' | sort -n | head -n -1); do
            skip+=(--exclude "$run/checkpoints/$step")
        done
    done
    rm -f "$OUT"/runs-gpu.tgz.part-*  # an earlier part of this command packed fewer runs: no stale parts
    tar czf - -C .. "${skip[@]}" "${runs[@]}" | split -b 15M -d - "$OUT/runs-gpu.tgz.part-"
    # What comes back from $OUT: at most 8 files, 64 MiB together; results.tgz is one of them
    local files=("$OUT"/*) bytes
    bytes=$(du -cb "${files[@]}" | tail -n 1 | cut -f 1)
    if [ "${#files[@]}" -gt 8 ] || [ "$bytes" -gt $((64 << 20)) ]; then
        echo "=== $OUT holds ${#files[@]} files, $((bytes >> 20)) MiB, more than come back: pack fewer runs" \
            "(RUNS) or resume them on this machine"
    fi
}

cd benchmarks
case $part in
    1)
        run 200 env_throughput.py --max-seconds 170 $flag
        run 290 memory_modules.py --lengths 256 1024 4096 16384 --timeout 40 $flag
        run 60 scaling.py $flag
        ;;
    2)
        run 330 ppo_throughput.py --max-seconds 300 $flag
        run 230 learning_curves.py --preset tmaze --steps-scale 0.3 --max-seconds 200 $flag
        ;;
    3)
        run 330 learning_curves.py --preset ballet --runs ballet8-delay48-gru ballet8-delay48-trxl ballet8-delay48-hcam --max-seconds 300 $flag
        run 230 context_edit.py --scale full --budgets 4 8 --streams 64 --updates 400 --max-seconds 200 $flag
        ;;
    4)
        run 150 memory_gym_throughput.py --max-seconds 120 $flag
        run 400 learning_curves.py --preset memory_gym --seeds 2 --steps-scale 0.25 --max-seconds 380 $flag
        ;;
    5)
        run 570 learning_curves.py --preset ballet --seeds 2 --max-seconds 430 --update $flag \
            --runs ballet{4,2}-delay{48,16}-{gru,trxl,hcam}
        ;;
    6)
        run 570 learning_curves.py --preset memory_gym_symbolic --seeds 2 --steps-scale 0.75 --max-seconds 430 $flag
        ;;
    7)
        run 570 learning_curves.py --preset tmaze --steps-scale 0.3 --max-seconds 450 --update $flag \
            --runs tmaze500-{trxl,ffm} tmaze1000-{gru,lstm,trxl,ffm}
        ;;
    8)
        run 570 context_edit.py --scale medium --max-seconds 450 ${label:+--device-label $label-medium}
        ;;
    9)  # (as run: the first line with --max-seconds 60 did only TrXL; HCAM followed with --runs ballet2-delay16-hcam)
        run 200 learning_curves.py --preset ballet --seeds 2 --max-seconds 100 --update $flag --runs ballet2-delay16-{trxl,hcam}
        run 60 learning_curves.py --preset tmaze --steps-scale 0.3 --max-seconds 30 --update $flag --runs tmaze1000-ffm
        run 350 learning_curves.py --preset memory_gym_symbolic --seeds 2 --steps-scale 0.75 --max-seconds 30 --update $flag \
            --runs MysteryPath-Grid-Symbolic-trxl
        ;;
    10)  # the cell part 8 left for time, in a report of its own
        run 300 context_edit.py --scale medium --streams 64 --budgets 4 --max-seconds 200 ${label:+--device-label $label-medium-L64C4}
        ;;
    11)  # Transformer-XL on T-Maze L = 1000 (a 1008-step window), two seeds to fit in one call
        run 520 learning_curves.py --preset tmaze --steps-scale 0.3 --seeds 2 --max-seconds 60 --update $flag --runs tmaze1000-trxl
        ;;
    12)  # FFM again, so that the new memories are compared with it in the same session
        run 570 memory_modules.py --modules ffm min_gru s5 mamba rate --lengths 256 1024 4096 16384 --timeout 90 \
            --update $flag
        ;;
    13)  # needs two GPUs; the labels name the machine and the agent
        run 150 scaling.py --devices 1 2 --same-parameters --device-label h200x2
        run 150 scaling.py --devices 1 2 --same-parameters --env mnemax/MortarMayhem-Grid-Symbolic-v0 --memory trxl \
            --per-device-envs 1024 --device-label h200x2-mmg-symbolic-trxl
        run 240 scaling.py --devices 1 2 --same-parameters --env mnemax/MortarMayhem-Grid-v0 --per-device-envs 512 \
            --device-label h200x2-mmg-pixel-gru
        ;;
    14)  # the `tmaze` preset's curriculum at the PPO issue's size
        run 560 learning_curves.py --preset tmaze_recipe --max-seconds 400 --update $flag --runs active100-gru active100-none
        ;;
    15)  # the diagnostics cells of the PPO issue's targets, with the preset as it ships (two GPUs: one each)
        gpus=$(nvidia-smi -L | wc -l)
        CUDA_VISIBLE_DEVICES=0 run 560 learning_curves.py --preset diagnostics --max-seconds 10 --update $flag \
            --runs CountRecall-Easy-gru &
        [ "$gpus" -ge 2 ] || wait
        CUDA_VISIBLE_DEVICES=$((gpus >= 2 ? 1 : 0)) run 560 learning_curves.py --preset diagnostics --max-seconds 10 \
            --update $flag --runs RepeatFirst-Medium-gru &
        wait
        ;;
    16|17)  # memorax on the second GPU beside mnemax's rows on the first (each --update merges into one report;
            # on one GPU they run one after the other); 17: memorax's default constant learning rate
        gpus=$(nvidia-smi -L | wc -l)
        schedule=$([ "$part" = 17 ] && echo --constant-lr)
        common="--tasks mnemax/MortarMayhem-Grid-Symbolic-v0 --num-envs 2048 --seeds 3 --num-logs 40 --update $schedule"
        common="$common --device-label ${label:-h200}-mmg${schedule:+-constant-lr}"
        CUDA_VISIBLE_DEVICES=0 run 280 learning_vs_memorax.py $common --rows mnemax mnemax-matched &
        [ "$gpus" -ge 2 ] || wait
        CUDA_VISIBLE_DEVICES=$((gpus >= 2 ? 1 : 0)) run 320 learning_vs_memorax.py $common --rows memorax &
        wait
        ;;
    26)  # the passive T-Maze L = 100 cells of the PPO issue still missing (LSTM, Transformer-XL) and L = 1000
         # with near starts (FFM and the memoryless agent); one GPU each (needs two GPUs)
        common="--preset tmaze_recipe --update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 560 learning_curves.py $common --max-seconds 300 \
            --runs passive1000-ffm_near_start passive100-lstm &
        CUDA_VISIBLE_DEVICES=1 run 560 learning_curves.py $common --max-seconds 100 \
            --runs passive1000-none_near_start passive100-trxl &
        wait
        ;;
    27)  # the runs of part 26 that its time limit cut (Transformer-XL stopped at 97 of 100 M steps) on the
         # first GPU; throughput against the unrolling of the loops over time on the second
        common="--preset tmaze_recipe --update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 580 learning_curves.py $common --max-seconds 480 \
            --runs passive1000-none_near_start passive100-trxl &
        CUDA_VISIBLE_DEVICES=1 run 560 scan_unroll.py --max-seconds 420 $flag &
        wait
        ;;
    28)  # part 25 after the loops over time were unrolled on GPUs (the diagnostics cells ~2.4x faster): the
         # `memory_gym` preset with LeCun-normal layers on the first GPU, diagnostics cells on the second
        common="--update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 560 learning_curves.py --preset ppo_ablations $common --max-seconds 10 \
            --runs mmg-memory_gym_preset_lecun &
        CUDA_VISIBLE_DEVICES=1 run 560 learning_curves.py --preset diagnostics $common --max-seconds 400 \
            --runs RepeatFirst-Medium-none CountRecall-Easy-none RepeatFirst-Easy-gru RepeatFirst-Easy-none \
            RepeatPrevious-Easy-gru RepeatPrevious-Easy-none CountRecall-Easy-ffm Autoencode-Easy-gru &
        wait
        ;;
    29)  # the `memory_gym` preset with the log barrier in place of its entropy bonus on the first GPU; on the
         # second, FFM and Mamba after Mamba's scan ran in pieces, then more diagnostics cells (needs two GPUs)
        common="--update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 560 learning_curves.py --preset ppo_ablations $common --max-seconds 10 \
            --runs mmg-memory_gym_preset_barrier &
        (
            export CUDA_VISIBLE_DEVICES=1
            run 150 memory_modules.py --modules ffm mamba --lengths 1024 4096 16384 --timeout 40 --update $flag
            run 400 learning_curves.py --preset diagnostics $common --max-seconds 250 \
                --runs RepeatPrevious-Easy-none CountRecall-Easy-ffm Autoencode-Easy-gru Autoencode-Easy-none
        ) &
        wait
        ;;
    18)  # passive T-Maze L = 1000 with near starts: FFM on the first GPU, S5 and the memoryless agent on the
         # second (one GPU: one after the other, in two commands)
        gpus=$(nvidia-smi -L | wc -l)
        common="--preset tmaze_recipe --update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 560 learning_curves.py $common --max-seconds 10 --runs passive1000-ffm_near_start &
        if [ "$gpus" -ge 2 ]; then
            CUDA_VISIBLE_DEVICES=1 run 560 learning_curves.py $common --max-seconds 450 \
                --runs passive1000-none_near_start passive1000-s5_near_start &
        fi
        wait
        ;;
    20)  # attention memories after HCAM's dense read; pixel PPO on two GPUs after the encoder's sharding fix
        run 400 memory_modules.py --modules trxl hcam --lengths 256 1024 4096 16384 --timeout 90 --update $flag
        run 180 scaling.py --devices 1 2 --same-parameters --env mnemax/MortarMayhem-Grid-v0 --per-device-envs 512 \
            --device-label h200x2-mmg-pixel-gru
        ;;
    21)  # LeCun-normal dense layers (the `mnemax-lecun` row) beside the runs of parts 16, 17 and the T-Maze L = 10
         # report on the first GPU; the `memory_gym` preset with and without them on the second
        gpus=$(nvidia-smi -L | wc -l)
        mmg="--tasks mnemax/MortarMayhem-Grid-Symbolic-v0 --num-envs 2048 --seeds 3 --num-logs 40 --update"
        (
            export CUDA_VISIBLE_DEVICES=0
            run 200 learning_vs_memorax.py $mmg --constant-lr --device-label ${label:-h200}-mmg-constant-lr --rows mnemax-lecun
            run 200 learning_vs_memorax.py $mmg --device-label ${label:-h200}-mmg --rows mnemax-lecun
            run 120 learning_vs_memorax.py --tasks mnemax/TMaze-Passive-v0 --seeds 3 --update --device-label ${label:-h200} \
                --rows mnemax-lecun
        ) &
        [ "$gpus" -ge 2 ] || wait
        CUDA_VISIBLE_DEVICES=$((gpus >= 2 ? 1 : 0)) run 540 learning_curves.py --preset ppo_ablations --update \
            --max-seconds 250 --device-label ${label:-h200} --runs mmg-memory_gym_preset mmg-memory_gym_preset_lecun &
        wait
        ;;
    22)  # after LeCun normal became the agents' default init: active T-Maze L = 100 on one GPU beside
         # CountRecall-Easy on the other, then the same T-Maze run on both GPUs (needs two GPUs)
        common="--update --max-seconds 10 --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 330 learning_curves.py --preset tmaze_recipe $common --runs active100-gru &
        CUDA_VISIBLE_DEVICES=1 run 330 learning_curves.py --preset diagnostics $common --runs CountRecall-Easy-gru &
        wait
        run 240 learning_curves.py --preset tmaze_recipe $common --runs active100-gru_2gpus
        ;;
    23)  # the other preset cells after the change of init, one GPU each (needs two GPUs)
        common="--update --max-seconds 350 --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 400 learning_curves.py --preset diagnostics $common --runs RepeatFirst-Medium-gru \
            RepeatFirst-Medium-ffm &
        CUDA_VISIBLE_DEVICES=1 run 400 learning_curves.py --preset tmaze_recipe $common --runs passive100-gru passive100-ffm &
        wait
        ;;
    24)  # pixel PPO on 1 and 2 GPUs after the fix of the encoder's sharding (the part of 20 that fits in the
         # time left; the earlier report keeps the same-parameters check)
        run 200 scaling.py --devices 1 2 --env mnemax/MortarMayhem-Grid-v0 --per-device-envs 512 \
            --device-label h200x2-mmg-pixel-gru-encoder-fix
        ;;
    25)  # the `memory_gym` preset with LeCun-normal layers (part 21 ran out of time for it) on the first GPU;
         # the diagnostics cells still missing on the second (needs two GPUs)
        common="--update --device-label ${label:-h200}"
        CUDA_VISIBLE_DEVICES=0 run 540 learning_curves.py --preset ppo_ablations $common --max-seconds 10 \
            --runs mmg-memory_gym_preset_lecun &
        CUDA_VISIBLE_DEVICES=1 run 540 learning_curves.py --preset diagnostics $common --max-seconds 300 \
            --runs CountRecall-Easy-ffm RepeatFirst-Medium-none CountRecall-Easy-none &
        wait
        ;;
    30)  # symbolic Mortar Mayhem Grid, GRU, the `memory_gym` preset as it ships, 1.64e8 steps, in pieces: each
         # call trains ~7.5 minutes, stops at the end of a log interval with a checkpoint in ../runs/gpu, and
         # the next call continues it (26 MB of checkpoint per seed to carry along); TRAIN_SECONDS sets when
         # it stops (the last log interval, ~45 s, and the checkpoint come after). SEEDS seeds from
         # FIRST_SEED on: seeds 0-1 ran together, seed 2 with SEEDS=1 FIRST_SEED=2 (one row in the report)
         # RUNS picks another run of the preset (e.g. MortarMayhem-Grid-Symbolic-trxl_bf16); STEPS_SCALE multiplies
         # its step budget (the schedules shrink with it)
        piece memory_gym_symbolic "${RUNS:-MortarMayhem-Grid-Symbolic-gru}" 2 440
        ;;
    31)  # memorax's rows of the side-by-side runs on passive T-Maze L = 100 and RepeatPrevious-Easy
        run 500 learning_vs_memorax.py --tasks mnemax/TMaze-Passive-L100-v0 mnemax/RepeatPrevious-Easy-v0 \
            --rows memorax --update $flag
        ;;
    32)  # mnemax's rows of the same (at the shared settings and with its presets)
        run 500 learning_vs_memorax.py --tasks mnemax/TMaze-Passive-L100-v0 mnemax/RepeatPrevious-Easy-v0 \
            --rows mnemax mnemax-recipe --update $flag
        ;;
    33)  # where the time of a PPO update goes, pixel Mortar Mayhem Grid with each way of computing the CNN's
         # convolutions (lax.conv or patches x matrix) and its symbolic twin, 1 and 3 seeds
        run 500 ppo_profile.py --max-seconds 420 $flag
        ;;
    34)  # pixel Mortar Mayhem Grid, GRU, the `memory_gym` preset, 1.64e8 steps, in pieces as part 30, one seed
         # at a time (40 MB of checkpoint per seed, 165 MB packed for TrXL's run; FIRST_SEED picks it); a log
         # interval takes ~50-110 s here. A piece stops itself at the last log interval that ends within
         # TRAIN_SECONDS - 60 s (`piece`);
         # give TRAIN_SECONDS about 30 s under an outer limit (before --time-limit, a SIGTERM at 545 s let
         # the interval run on past a 600 s limit and the piece was lost). RUNS picks another run of the
         # preset, e.g. MortarMayhem-Grid-gru_bf16 (bfloat16 compute) or MysteryPath-Grid-trxl_bf16. Once the run has trained all its steps: a GIF of
         # a greedy episode for docs/gallery, named after the run without its _bf16.
        piece memory_gym "${RUNS:-MortarMayhem-Grid-gru}" 1 400
        gallery_gif "${RUNS:-MortarMayhem-Grid-gru}" "$(basename "${RUNS:-MortarMayhem-Grid-gru}" _bf16)" 160
        ;;
    35)  # the cost of mamba2 (Mamba-2's chunked algorithm) against FFM and mamba, then the state-space
         # memories on the diagnostics with targets (the runs write into one report; part 36 alongside)
        run 200 memory_modules.py --modules ffm mamba mamba2 --lengths 1024 4096 16384 --timeout 60 --update $flag
        run 330 learning_curves.py --preset diagnostics --max-seconds 240 --update $flag --runs \
            RepeatFirst-Medium-min_gru CountRecall-Easy-min_gru RepeatFirst-Medium-s5 CountRecall-Easy-s5
        ;;
    36)
        run 530 learning_curves.py --preset diagnostics --max-seconds 400 --update $flag --runs \
            RepeatFirst-Medium-mamba2 CountRecall-Easy-mamba2 RepeatFirst-Medium-mamba CountRecall-Easy-mamba
        ;;
    37)  # Ballet's binding learned by supervised probes (no RL): which dancer did the asked dance, per memory,
         # and the easier half of it, which dance the first dancer did
        run 330 ballet_probe.py --envs Ballet-2-Delay16-Symbolic-v0 --memories gru trxl hcam none --updates 10000 \
            --evals 40 $flag
        run 230 ballet_probe.py --question first-dance --memories gru none --updates 10000 --evals 40 \
            ${label:+--device-label $label-first-dance}
        ;;
    38)  # the T-Maze recipe's row of RATE (Mamba-2's is in), in pieces as part 30: each stops with a checkpoint
         # in ../runs/gpu before a log interval would overrun TRAIN_SECONDS - 60, and the same command continues
         # it (RUNS picks one run of the preset)
        piece tmaze_recipe "${RUNS:-passive100-rate}" 3 520
        ;;
    39)  # passive T-Maze L = 1000 (FFM, near starts) on two GPUs, beside the one-GPU run of the same (two GPUs)
        run 300 learning_curves.py --preset tmaze_recipe --seeds 3 --max-seconds 60 --update $flag \
            --runs passive1000-ffm_near_start_2gpus
        ;;
    40)  # Ballet with 2 dancers, 1e8 steps, S5 / TrXL / HCAM / GRU (RUNS picks them; resumable pieces as part 30)
        run "${TRAIN_SECONDS:-520}" learning_curves.py --preset ballet_long --seeds 3 --max-seconds 500 \
            --run-dir ../runs/gpu --resume --update $flag --runs ${RUNS:-ballet2-delay16-s5 ballet2-delay16-trxl}
        ;;
    41)  # where a PPO update's time goes with the encoder and memory in bfloat16, and with JAX differentiating
         # the GRU's scan instead of its hand-written backward pass (pixel and symbolic Mortar Mayhem Grid)
        run 520 ppo_profile.py --variants patches bf16 gru-autodiff --max-seconds 450 \
            ${label:+--device-label $label-variants}
        ;;
    42)  # the Ballet binding probes of part 37 with one ReLU layer between the memory and the answer (as the
         # agents' policy head), then with the linear read-out for the same memories and budget
        run 280 ballet_probe.py --memories s5 trxl gru none --max-timescale 128 --readout mlp --updates 6000 \
            --evals 30 ${label:+--device-label $label-mlp}
        run 250 ballet_probe.py --memories s5 trxl gru --max-timescale 128 --updates 6000 --evals 30 \
            ${label:+--device-label $label-linear}
        ;;
    43)  # the binding probe of part 42 (linear read-out) with twice the episodes (768,000), one memory per GPU
        CUDA_VISIBLE_DEVICES=0 run 150 ballet_probe.py --memories s5 --updates 12000 --evals 30 \
            ${label:+--device-label $label-768k-s5} &
        CUDA_VISIBLE_DEVICES=1 run 150 ballet_probe.py --memories trxl --updates 12000 --evals 30 \
            ${label:+--device-label $label-768k-trxl} &
        wait
        ;;
    44)  # compile time of every registered id's vmapped step (and reset), 1024 envs, slowest first
        run 560 compile_time.py --max-seconds 500 --timeout 120 $flag
        ;;
    45)  # where the time of a PPO update goes with Transformer-XL (the `memory_gym` preset's 3 blocks, window
         # 118) on pixel Mortar Mayhem Grid, in f32 and with bf16 compute (the CNN as patches or lax.conv)
        run 400 ppo_profile.py --memories trxl --variants patches bf16 bf16-xla --max-seconds 330 \
            ${label:+--device-label $label-trxl}
        run 150 ppo_profile.py --memories gru --envs mnemax/MortarMayhem-Grid-v0 --variants bf16-xla \
            --max-seconds 100 ${label:+--device-label $label-gru-bf16-xla}
        ;;
    46)  # Ballet with 2 dancers, S5, 1e9 steps per seed (3 seeds, ~1,000 s on an H200), in resumable pieces
        run "${TRAIN_SECONDS:-520}" learning_curves.py --preset ballet_1e9 --seeds 3 --max-seconds 500 \
            --run-dir ../runs/gpu --resume --update $flag
        ;;
    47)  # the diagnostics grid, the cells its report does not hold yet, in PROCS processes on this GPU (they
         # share it; on a host of GPUS GPUs, run this part once per GPU with GPU=0 .. GPUS-1 and each takes its
         # share); a process starts no cell after TRAIN_SECONDS - 330 s, and cells cut by the limit resume;
         # RUNS="A B" takes only those cells (e.g. the quick FFM ones when little time is left). Compiled
         # programs are kept in runs/jax-cache, so a cell resumed on the same machine skips compiling (a
         # linear-attention cell spends 280-420 s before its first log beside five to seven others, 240-250 s
         # beside one; resumed on the same machine, two TrXL cells beside three others trained their last
         # 8.7 M steps within a 256-s sitting)
        procs=${PROCS:-4}
        for k in $(seq 0 $((procs - 1))); do
            JAX_COMPILATION_CACHE_DIR=$jax_cache XLA_PYTHON_CLIENT_PREALLOCATE=false \
                run "${TRAIN_SECONDS:-560}" learning_curves.py --preset diagnostics \
                ${RUNS:+--runs $RUNS} --pending --shard $((${GPU:-0} * procs + k)) $((${GPUS:-1} * procs)) \
                --max-seconds $((${TRAIN_SECONDS:-560} - 330)) --run-dir ../runs/gpu --resume --update $flag \
                > "/tmp/grid-$k.log" 2>&1 &
        done
        wait
        cat /tmp/grid-*.log
        ;;
    48)  # Ballet-2-Delay16 with the recipe that solved T-Maze and Mortar Mayhem Grid (`memory_gym` preset),
         # S5 and GRU, 1e8 steps, 3 seeds (resumable in pieces)
        run "${TRAIN_SECONDS:-540}" learning_curves.py --preset ballet_recipe --seeds 3 --max-seconds 500 \
            --run-dir ../runs/gpu --resume --update $flag
        ;;
    49)  # what HCAM's training cost is made of next to dense TrXL (its chunk read in one block instead of blocks
         # of 128 queries; the selected chunks gathered instead of read densely), and Mamba-2's chunk size
         # against FFM at T = 16384 (the issue's 2x)
        run 330 memory_modules.py --modules trxl hcam hcam:read_block=4096 hcam:dense_read=False --lengths 256 1024 \
            --timeout 60 --update $flag
        run 230 memory_modules.py --modules ffm mamba2 mamba2:chunk_size=16 mamba2:chunk_size=32 \
            mamba2:chunk_size=128 --lengths 16384 --timeout 60 --update $flag
        ;;
    50)  # XLA's command buffers (CUDA graphs) over whole while loops, against the default, for the latency-bound
         # loops of a pixel GRU update (256 sequential steps per minibatch) and of its symbolic twin
        graphs="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,CONDITIONAL,WHILE"
        run 240 ppo_profile.py --memories gru --variants bf16 --max-seconds 200 \
            ${label:+--device-label $label-gru-bf16-graphs-default}
        XLA_FLAGS="${XLA_FLAGS:-} $graphs --xla_gpu_graph_min_graph_size=1" run 240 ppo_profile.py --memories gru \
            --variants bf16 --max-seconds 200 ${label:+--device-label $label-gru-bf16-graphs-while}
        ;;
    51)  # symbolic Mortar Mayhem Grid to 1.64e8 steps with the memories trained by a parallel scan (FFM, minGRU,
         # S5), the `memory_gym` preset, 3 seeds, one after another from S5 (resumable in pieces)
        run "${TRAIN_SECONDS:-540}" learning_curves.py --preset memory_gym_symbolic --seeds 3 --max-seconds 500 \
            --runs MortarMayhem-Grid-Symbolic-{s5,min_gru,ffm} --run-dir ../runs/gpu --resume --update $flag
        ;;
    52)  # Memory Gym throughput after the Mystery Path and Searing Spotlights speed-ups (cheaper path search,
         # renders as palette indices), every task, against the H100 figures of part 4; then with the initial
         # states drawn ahead as the memory_gym preset does (reset pool of 16)
        finite="MortarMayhem-Grid-v0 MortarMayhem-v0 MysteryPath-Grid-v0 MysteryPath-v0 SearingSpotlights-v0"
        run 270 memory_gym_throughput.py --tasks $finite --max-seconds 230 --no-reference $flag
        run 270 memory_gym_throughput.py --tasks $finite --max-seconds 230 --no-reference --reset-pool 16 \
            ${label:+--device-label $label-reset-pool}
        ;;
    53)  # context editing at full size (L = 64, C = 4) with a two-stage curriculum: 400 updates without the slot
         # cost and with queries 2-8 steps after their fact, then the task itself; DCPO and PPO, 3 seeds
        run 560 context_edit.py --scale full --budgets 4 --streams 64 --updates 1000 --algos dcpo ppo \
            --train-env-params slot_cost=0 min_query_delay=2 max_query_delay=8 \
            --train-params curriculum_updates=400 --max-seconds 520 ${label:+--device-label $label-curriculum}
        ;;
    54)  # context editing at full size (L = 64, C = 4): PPO for 500 updates (its per-step credit teaches the
         # editor to read its context), then DCPO from PPO's network for 500 (init_from); 3 seeds
        run 560 context_edit.py --scale full --budgets 4 --streams 64 --updates 1000 --algos ppo-dcpo --handoff 0.5 \
            --max-seconds 520 ${label:+--device-label $label-ppo-dcpo}
        ;;
    55)  # context editing at full size (L = 64, C = 4): PPO for 1000 updates with part 53's curriculum (it reached
         # 0.87 there), then DCPO from PPO's network for 500 updates on the task itself; 3 seeds
        run 560 context_edit.py --scale full --budgets 4 --streams 64 --updates 1500 --algos ppo-dcpo --handoff 0.667 \
            --train-env-params slot_cost=0 min_query_delay=2 max_query_delay=8 --train-params curriculum_updates=400 \
            --max-seconds 520 ${label:+--device-label $label-curriculum-ppo-dcpo}
        ;;
    56)  # where the time of a pixel Mystery Path Grid and Mortar Mayhem Grid PPO update goes (the `memory_gym`
         # preset, GRU, bf16), with the initial states drawn ahead (`reset_pool`, as the preset ships) and with
         # one drawn at every step
        run 480 ppo_profile.py --envs mnemax/MysteryPath-Grid-v0 mnemax/MortarMayhem-Grid-v0 --memories gru \
            --variants bf16 bf16-no-pool --seeds 1 --max-seconds 400 ${label:+--device-label $label-reset-pool}
        ;;
    57)  # context editing, part 55's recipe (the cost-free short-delay curriculum in PPO's 1000 updates, then
         # DCPO for 500) at another size or task: TASK (KVUpdate, MultiHop, Distractor), BUDGET and STREAM
         # (default C = 8, L = 64); 3 seeds, ~280-400 s at L = 64; at L = 128 more than one sitting (resumed).
         # ALGO=ppo trains PPO alone with the same curriculum for the same 1500 updates (the control). MultiHop
         # and Distractor keep their registered parameters (24 keys; queries 32-128 steps after the fact);
         # give Distractor its registered STREAM=256. EXTRA adds arguments, e.g. "--env-params slot_cost=0.05";
         # STAGE replaces the first stage's task changes (e.g. STAGE=slot_cost=0 keeps the task's delays, so a
         # MultiHop context at C = 4 fills up and merging links pays; items may be separated by commas), and
         # names the report after itself;
         # EDIT_HEAD=joint trains the editor with op and slot as one choice (the report says -joint);
         # KICKSTART=COEF adds the oracle as a teacher over the first stage's updates (kickstart_coef, annealed
         # to 0 by the end of the stage, or by update KICKSTART_UPDATES of PPO's first stage; the report says
         # -kickstart, -teacher<N>); STAGE_PARAMS sets the second stage apart (e.g. STAGE_PARAMS=ent_coef=0; the
         # report says -stage-ent_coef_0); ALGO="ppo-dcpo ppo-ppo" adds the control
         # that continues with PPO from the same first stage (trained once; a learner starts while 150 s of the
         # sitting are left, else the next sitting starts it); HANDOFF moves the handoff (default 0.667 of the
         # updates; the report says -handoff0p75). UPDATES and STAGE_UPDATES shorten the run
         # and its first stage (full-size Distractor reached 0.982 on 3 seeds with 150 and 75, 302 s on an H200:
         # UPDATES=150 STAGE_UPDATES=75 TASK=Distractor STREAM=256 KICKSTART=1.0). Runs keep
         # their checkpoints in ../runs/gpu/context_edit/<name>: a run longer than one sitting (L = 128 at C = 8)
         # stops with a checkpoint before a log interval would end past TRAIN_SECONDS - 60 (default 590; the rest
         # is for start-up and scoring; the outer timeout at TRAIN_SECONDS is a backstop, and a run it stops
         # mid-interval loses that interval), and the same command continues it. Run these one at a time: two
         # side by side on one H200 each went at half speed (L = 128, C = 8: 0.45 s per update alone, 0.93 s
         # beside another run)
        stage=${STAGE:-slot_cost=0 min_query_delay=2 max_query_delay=8}
        stage=${stage//,/ }  # commas for spaces, where a caller cannot pass spaces
        stage_updates=${STAGE_UPDATES:-400}
        slug() { echo "$1" | sed 's/[ ,]/-/g; s/=/_/g; s/[.]/p/g'; }  # settings as a part of a file name
        name=curriculum${STAGE:+-$(slug "$STAGE")}-$(slug "${ALGO:-ppo-dcpo}")-${TASK:-KVUpdate}-L${STREAM:-64}-C${BUDGET:-8}
        name+=${EDIT_HEAD:+-$EDIT_HEAD}${KICKSTART:+-kickstart${KICKSTART_UPDATES:+-teacher$KICKSTART_UPDATES}}${UPDATES:+-u$UPDATES}${STAGE_PARAMS:+-stage-$(slug "$STAGE_PARAMS")}${HANDOFF:+-handoff$(slug "$HANDOFF")}
        run "${TRAIN_SECONDS:-590}" context_edit.py --task "${TASK:-KVUpdate}" --scale full --budgets "${BUDGET:-8}" \
            ${EXTRA:-} --streams "${STREAM:-64}" --updates "${UPDATES:-1500}" --algos ${ALGO:-ppo-dcpo} --handoff "${HANDOFF:-0.667}" \
            --train-env-params $stage --train-params curriculum_updates="$stage_updates" \
            ${KICKSTART:+kickstart_coef=$KICKSTART kickstart_updates=${KICKSTART_UPDATES:-$stage_updates}} \
            ${EDIT_HEAD:+"agent_config={'edit_head':'$EDIT_HEAD'}"} ${STAGE_PARAMS:+--stage-params ${STAGE_PARAMS//,/ }} \
            --max-seconds $((${TRAIN_SECONDS:-590} - 150)) \
            --time-limit $((${TRAIN_SECONDS:-590} - 60)) --run-dir "../runs/gpu/context_edit/$name" --resume \
            ${label:+--device-label $label-$name}
        ;;
    58)  # Mamba-2's cost against FFM's by chunk length (the module's default is 64; on a 2-core CPU 32 was 9%
         # faster at T = 4096 and 128 16% slower), forward + backward, width 256, batch 16
        run 300 memory_modules.py --modules ffm mamba2 mamba2:chunk_size=32 mamba2:chunk_size=128 \
            mamba2:chunk_size=256 --lengths 4096 16384 --timeout 60 ${label:+--device-label $label-mamba2-chunks}
        ;;
    59)  # the endless Memory Gym tasks' throughput (Endless Mystery Path's next path computed only where a goal
         # is reached), without and with the reset pool of 16
        endless="EndlessMortarMayhem-v0 EndlessMysteryPath-v0 EndlessSearingSpotlights-v0"
        run 270 memory_gym_throughput.py --tasks $endless --max-seconds 230 --no-reference \
            ${label:+--device-label $label-endless-no-pool}
        run 270 memory_gym_throughput.py --tasks $endless --max-seconds 230 --no-reference --reset-pool 16 \
            ${label:+--device-label $label-endless}
        ;;
    60)  # Mamba-2 with the states between chunks from one matrix product over every pair of chunks
         # (dense_chunks=512, Mamba-2's own state passing) against the associative scan (the default, 0),
         # FFM beside them; run it alone on the GPU (2-core CPU, T = 4096: scan 2.9-3.0 s, product 3.1-3.3 s;
         # H200: T = 4096 scan 3.4 ms, product 3.9; T = 16384 10.8 and 10.3). LENGTHS="1024 8192" fills in between;
         # MODULES replaces the variants, e.g. MODULES="ffm mamba2:dense_chunks=512 mamba2:chunk_size=32,dense_chunks=512"
        run 200 memory_modules.py --modules ${MODULES:-ffm mamba2 mamba2:dense_chunks=512} --lengths ${LENGTHS:-4096 16384} --timeout 60 \
            --update ${label:+--device-label $label-mamba2-dense}
        ;;
    61)  # RATE's diagnostics cells with targets, the two side by side, resumable in pieces (side_by_side)
        side_by_side diagnostics "${TRAIN_SECONDS:-560}" RepeatFirst-Medium-rate CountRecall-Easy-rate
        ;;
    62)  # HCAM against dense TrXL at T = 16384 (the HCAM issue asks for it within 40 GB; at 60 s per case neither
         # finished there, TrXL's four layers of 16384 x 32768 scores take seconds per pass), merged into the
         # H200 table; then HCAM's chunk read scored densely or gathered, and in one block, at T = 1024 and 4096
        run 560 memory_modules.py --modules hcam trxl --lengths 16384 --timeout 250 --update $flag
        run 300 memory_modules.py --modules hcam hcam:dense_read=True hcam:dense_read=False hcam:read_block=4096 \
            --lengths 1024 4096 --timeout 60 ${label:+--device-label $label-hcam-read}
        ;;
    63)  # HCAM and dense TrXL since the MLP's GELU and, from 2048 steps on, the short-window attention are
         # recomputed in the backward pass: the forward's residuals kept for the backward of HCAM at T = 16384
         # (benchmark sizes, `jax.ad_checkpoint.print_saved_residuals`) went from 72.0 to 39.5 GiB; measured
         # before, HCAM 1,480 ms in 44.8 GB and TrXL 3,414 ms in 53.6 GB; after, 1,488 ms in 32.9 GB and
         # 3,411 ms in 47.5 GB (H200). Merged into the H200 table.
        run 580 memory_modules.py --modules hcam trxl --lengths 256 1024 4096 16384 --timeout 200 --update $flag
        ;;
    64)  # the start-up of a diagnostics cell, 3 seeds: the grid's linear-attention cells logged first at
         # 280-420 s and every 4 s after (GRU first at 22-85 s, TrXL 88-139), while on the 2-core CPU its first
         # update takes 21-25 s against GRU's 10-16: the first update's time under XLA's default autotuning,
         # without autotuning and without the fusion autotuner (Triton or not), the three side by side. (Two
         # DelayedMatch linear-attention cells side by side logged first at 250 s with the defaults and 240 s
         # with --xla_gpu_autotune_level=0: autotuning is not most of it.)
        cells="diagnostics,mnemax/NParity-Medium-v0,linear_attention diagnostics,mnemax/NParity-Medium-v0,gru"
        for variant in default:"" autotune0:--xla_gpu_autotune_level=0 \
            no-fusion-autotuner:--xla_gpu_experimental_enable_fusion_autotuner=false; do
            XLA_FLAGS="${XLA_FLAGS:-} ${variant#*:}" XLA_PYTHON_CLIENT_PREALLOCATE=false run 560 scan_unroll.py \
                --cells $cells --unrolls 8,8 --calls 2 ${label:+--device-label $label-startup-${variant%%:*}} &
        done
        wait
        ;;
    65)  # symbolic Mortar Mayhem Grid beside memorax at its constant learning rate: mnemax with memorax's
         # initialisation (LeCun-normal dense layers, the GRU's recurrent kernel orthogonal per gate) and its
         # structure together (`mnemax-flax-matched`; the initialisation alone ended at 0.179 against memorax's
         # 0.206, the structure alone at 0.140), ~200 s, merged into the report of part 21's rows
        run 280 learning_vs_memorax.py --tasks mnemax/MortarMayhem-Grid-Symbolic-v0 --num-envs 2048 --seeds 3 \
            --num-logs 40 --update --constant-lr --device-label ${label:-h200}-mmg-constant-lr --rows mnemax-flax-matched
        ;;
    66)  # the T-Maze targets within their budgets: passive L = 100 GRU, active L = 100 GRU (1e8 steps) and passive
         # L = 1000 FFM with near starts (5e8), which ran 1.6-2.5% past them when budgets were rounded up (now
         # down), side by side on this GPU (~280 s each alone), resumable in pieces as part 30
        for r in passive100-gru active100-gru passive1000-ffm_near_start; do
            XLA_PYTHON_CLIENT_PREALLOCATE=false piece tmaze_recipe $r 3 560 > "/tmp/tmaze-$r.log" 2>&1 &
        done
        wait
        cat /tmp/tmaze-*.log
        ;;
    67)  # Mamba's cost against FFM's by the length of the pieces its associative scan runs in (the default on
         # accelerators is the whole sequence: 50.7 ms in 17 GB at T = 16384, 64-step pieces 161 ms in 4.8 GB):
         # a piece's [n, B, E, N] f32 states take n / 4 MB here, so a piece of up to ~128 steps fits an H200's
         # 50 MB L2 cache, at the cost of more sequential pieces; forward + backward, width 256, batch 16
        run 400 memory_modules.py --modules ffm mamba mamba:chunk_size=128 mamba:chunk_size=256 mamba:chunk_size=1024 \
            mamba:chunk_size=4096 --lengths 4096 16384 --timeout 60 ${label:+--device-label $label-mamba-chunks}
        ;;
    68)  # part 45's TrXL profile again after the carry began to hold the window's keys and values (acting
         # projected all 3 x 118 cached steps at every step before: 62% of the symbolic update)
        run 230 ppo_profile.py --envs mnemax/MortarMayhem-Grid-Symbolic-v0 mnemax/MortarMayhem-Grid-v0 --memories trxl \
            --seeds 3 1 --variants bf16 --repeats 2 --max-seconds 190 ${label:+--device-label $label-trxl-kv}
        ;;
    69)  # part 68 found acting unchanged by the cached keys and values; the same symbolic cell with the window
         # cut from 118 to 32 steps tells whether what acting costs grows with the window (the carry is copied
         # whole at every step: 3 x 118 x 384 inputs plus keys and values per env)
        run 330 ppo_profile.py --envs mnemax/MortarMayhem-Grid-Symbolic-v0 --memories trxl --seeds 3 1 \
            --variants bf16 bf16-window32 --repeats 2 --max-seconds 280 ${label:+--device-label $label-trxl-window}
        ;;
    70)  # part 68's TrXL cells once acting writes one slot of a ring per step instead of shifting the window,
         # with the device time of one rollout and one update by kernel (--trace)
        run 430 ppo_profile.py --envs mnemax/MortarMayhem-Grid-Symbolic-v0 mnemax/MortarMayhem-Grid-v0 --memories trxl \
            --seeds 3 1 --variants bf16 --repeats 2 --trace --max-seconds 330 ${label:+--device-label $label-trxl-ring}
        ;;
    71)  # pixel Mortar Mayhem Grid, GRU and TrXL, 3 seeds in bf16, once the CNN's patches are slices of
         # stride x stride blocks (space to depth) instead of kh x kw strided slices, with kernel traces
        run 430 ppo_profile.py --envs mnemax/MortarMayhem-Grid-v0 --memories gru trxl --seeds 3 --variants bf16 \
            --repeats 2 --trace --max-seconds 330 ${label:+--device-label $label-pixels-blocks}
        ;;
    72)  # HCAM once its dense chunk read scores only the chunks a block of queries may see (on the 2-core CPU,
         # T = 1024: 15.6 -> 9.5 s; before, on the H200: 7.5 / 29.8 / 325.5 ms at T = 256 / 1024 / 4096 against
         # dense TrXL's 5.3 / 24.7 / 235.9), also read densely where the default gathers (4096 and 8192: which
         # way is cheaper there decides DENSE_READ_ENTRIES)
        run 560 memory_modules.py --modules trxl hcam hcam:dense_read=True --lengths 256 1024 4096 8192 --timeout 90 \
            ${label:+--device-label $label-hcam-window}
        ;;
    73)  # Mamba's blocked scan against its associative one (on the 2-core CPU the blocks were slower; on the
         # H200 the associative scan took 50.7 ms at T = 16384, FFM 5.2)
        run 400 memory_modules.py --modules ffm mamba 'mamba:scan="blocks"' 'mamba:scan="blocks",chunk_size=32' \
            'mamba:scan="blocks",chunk_size=128' --lengths 4096 16384 --timeout 60 ${label:+--device-label $label-mamba-blocks}
        ;;
    74)  # TrXL PPO on the vector tasks at 8192 envs (the throughput issue asks for 2.5 M steps/s; 1.0 M on an
         # H100 before the window's slices, query blocks and ring cache), GRU beside it, mnemax alone
        run 420 ppo_throughput.py --libraries mnemax --memories trxl gru --num-envs 8192 --max-seconds 380 \
            ${label:+--device-label $label-8192}
        ;;
    75)  # the Ballet binding probe with the encoder shared by the 8 spots against the agents' MLP (on the 2-core
         # CPU, S5: 0.95 at 268,800 / 192,000 episodes against - / 384,000), for S5, TrXL and HCAM (never probed)
        run 560 ballet_probe.py --memories s5 trxl hcam --encoders spots mlp --updates 12000 --evals 30 \
            ${label:+--device-label $label-encoders}
        ;;
    76)  # the Ballet binding probe with the encoder that needs no layout (one 3 x 3 convolution shared by every
         # cell of the room) for TrXL and S5, and HCAM with its local window over the whole episode or with
         # chunks of 4 steps (at its defaults, 16-step chunks and a 16-step window, it stays at chance; part 75)
        run 560 ballet_probe.py --memories trxl s5 hcam:local_length=64 hcam:chunk_size=4,top_k=16 --encoders conv \
            --updates 12000 --evals 30 ${label:+--device-label $label-conv}
        ;;
    77)  # the Ballet binding probe at 768,000 episodes for HCAM's chunk read with a 16-step window, where only
         # the chunks can carry the first dance: with the reference's places within a chunk, and chunks of 4
        run 560 ballet_probe.py --memories hcam:chunk_positions=True hcam:chunk_size=4,top_k=16 --encoders spots \
            --updates 12000 --evals 30 ${label:+--device-label $label-chunk-read}
        ;;
    78)  # RATE's diagnostics cells beyond part 61's two, side by side like them (CELLS names fewer or others;
         # on an H100 after RATE's one-pass blocks, RepeatFirst-Easy and RepeatPrevious-Easy side by side took
         # 444 and 451 s, the two Autoencode cells 531 and 522 s, `learning_diagnostics_h100.md`; the default is
         # the eight cells that had none, of which the NParity and DelayedMatch ones still have none). Name two per
         # call: six at once shared the GPU worse (7.1-8.8 M steps per seed in two calls of ~500 s, ~22 k env
         # steps/s per cell against ~100 k for each of two, compilation included)
        side_by_side diagnostics "${TRAIN_SECONDS:-560}" ${CELLS:-RepeatPrevious-Medium-rate CountRecall-Medium-rate
            Autoencode-Easy-rate Autoencode-Medium-rate NParity-Easy-rate NParity-Medium-rate
            DelayedMatch-Easy-rate DelayedMatch-Medium-rate}
        ;;
    79)  # the Ballet binding probe with 4 dancers: with 2, the last dance and the two dancers' spots answer
         # every question, so learning it does not show a read by content; with 4 it takes one. TrXL's window
         # over the whole episode (128 steps), S5, HCAM with its local window over half the episode and at its
         # defaults (16 steps), the spots encoder (on an H100 the first three took 491 s and the limit stopped the
         # fourth, run alone as `--memories hcam --device-label h100-4dancers-hcam` in 245 s; 0.995, 0.260, 0.954,
         # 0.616: `ballet_probe_h100-4dancers{,-hcam}.md`)
        run 560 ballet_probe.py --envs Ballet-4-Delay16-Symbolic-v0 --memories trxl:memory_length=128 s5 \
            hcam:local_length=64 hcam --encoders spots --updates 12000 --evals 30 \
            ${label:+--device-label $label-4dancers}
        ;;
    80)  # pixel PPO end to end against memorax 1.0.1 (needs its wheels in .whl) at the sizes of the Memory Gym
         # preset (GRU 512, TrXL with Mortar Mayhem's 118-step memory, 256 steps, 3 epochs x 8 minibatches),
         # the preset's 128 envs and 512; both libraries in float32 (Mortar Mayhem Grid alone took 334 s on an H200:
         # 3.91x and 3.28x memorax at 128 envs, 2.68x and 3.58x at 512; `ppo_throughput_h200-pixels.md`; Mystery
         # Path Grid alone on an H100, in two calls of 330 and 294 s: 2.43x and 2.31x at 128, 2.00x and 2.95x at 512,
         # `ppo_throughput_h100-pixels-mysterypath{,-512}.md`)
        run 570 ppo_throughput.py --envs mnemax/MortarMayhem-Grid-v0 mnemax/MysteryPath-Grid-v0 --memories gru trxl \
            --num-envs 128 512 --num-steps 256 --hidden-size 512 --update-epochs 3 --num-minibatches 8 \
            --trxl-memory 118 --max-seconds 540 ${label:+--device-label $label-pixels}
        ;;
    81)  # part 80 on Mystery Path Grid with the memory_gym preset's reset pool (mnemax draws initial states 16 at
         # a time; without it Mystery Path's path search runs at every step, half of a pixel GRU run's time): part
         # 80 left it out, and the preset's update runs at 111.8 k env steps/s on an H100 (f32, one seed,
         # `ppo_profile_h100-mpg-pixels-trace.md`) where part 80 measured 62 k. Both sizes took 330 + 294 s there
         # without the pool: run NUM_ENVS=128, then NUM_ENVS=512
        run 570 ppo_throughput.py --envs mnemax/MysteryPath-Grid-v0 --memories gru trxl \
            --num-envs ${NUM_ENVS:-128 512} --num-steps 256 --hidden-size 512 --update-epochs 3 --num-minibatches 8 \
            --trxl-memory 118 --reset-pool 16 --max-seconds 540 \
            ${label:+--device-label $label-pixels-mysterypath-pool-${NUM_ENVS:-all}}
        ;;
    82)  # where the time of RATE's PPO update goes (the diagnostics preset on RepeatFirst-Medium, 3 seeds), after
         # its read and write tokens ran only where a segment starts or completes (rollout 221.3 to 154.6 ms on an
         # H100, `ppo_profile_h100-rate-acting.md`) and its learning became one pass per block (on an H100: update
         # 477.5 to 360.9 ms, 206 k to 272 k env steps/s, `ppo_profile_h100-rate.md`)
        run 400 ppo_profile.py --memories rate --seeds 3 --variants patches --max-seconds 300 \
            ${label:+--device-label $label-rate}
        ;;
    83)  # HCAM against dense TrXL where HCAM is still dearer (T = 1024: 24.9 against 23.5 ms on an H200,
         # `memory_modules_h200-hcam-window.md`), with its read blocks two and eight at a time (`read_group`:
         # the loop over blocks in fewer, wider steps; on a 2-core CPU eight at a time took T = 1024 from 13.8 to
         # 18.0 s, `memory_modules_cpu-2core-hcam-group.md`, where dense TrXL took 31.0 s)
        run 330 memory_modules.py --modules trxl hcam hcam:read_group=2 hcam:read_group=8 --lengths 1024 4096 \
            --timeout 60 ${label:+--device-label $label-hcam-group}
        ;;
    84)  # Ballet-2-Delay16 with the items encoder (`ballet_items` preset), Transformer-XL, 1e8 steps, SEEDS seeds
         # (3) at once, in resumable pieces; RUNS=ballet2-delay16-hcam_items for HCAM
        piece ballet_items "${RUNS:-ballet2-delay16-trxl_items}" 3 540
        ;;
    85)  # Ballet-2-Delay16, Transformer-XL with the items encoder and a larger entropy bonus (`ballet_entropy`:
         # 0.03, 0.1, and 0.1 on the answer steps alone), 1e8 steps, one seed each, side by side (RUNS fewer;
         # the bonus 0.01's run took 256 s alone on an H100), resumable in pieces
        SEEDS=${SEEDS:-1} side_by_side ballet_entropy "${TRAIN_SECONDS:-570}" ${RUNS:-ballet2-delay16-trxl_items_ent0.03
            ballet2-delay16-trxl_items_ent0.1 ballet2-delay16-trxl_items_ent0.1_answers}
        ;;
    86)  # Ballet-2-Delay16 with the items encoder's present form (the instruction read apart), Transformer-XL
         # (at 3e-4 and 1e-3) and HCAM, the bonus 0.1 on the answer steps (`ballet_parts`), 1e8 steps, one seed
         # each, side by side (RUNS fewer or others: RUNS=ballet2-delay16-trxl_items_parts_ent0.1_answers_window64
         # is Transformer-XL with HCAM's 64-step local window), resumable in pieces
        SEEDS=${SEEDS:-1} side_by_side ballet_parts "${TRAIN_SECONDS:-570}" ${RUNS:-ballet2-delay16-trxl_items_parts_ent0.1_answers
            ballet2-delay16-trxl_items_parts_ent0.1_answers_lr1e-3 ballet2-delay16-hcam_items_parts_ent0.1_answers}
        ;;
    87)  # HCAM on Ballet-2-Delay16 with the items encoder's present form, three seeds at 2e8 steps (`ballet_hcam`):
         # checkpoints of the training state alone, so PACK_RUNS=1 brings them back and RUNS_FROM=DIR goes on
        SEEDS=${SEEDS:-3} side_by_side ballet_hcam "${TRAIN_SECONDS:-570}" ballet2-delay16-hcam_items_parts_ent0.1_answers_2e8
        ;;
    88)  # LRU's cost on the GPU beside FFM and S5, merged into the device's table (on the 2-core CPU, T = 1024 /
         # 4096: LRU 260 / 1,198 ms, S5 297 / 1,364, FFM 231 / 965, `memory_modules_cpu-2core-lru.md`)
        run 200 memory_modules.py --modules ffm s5 lru --lengths 1024 4096 16384 --timeout 60 --update $flag
        ;;
    89)  # Ballet-4-Delay48 and 8-Delay48 with the recipe that learned 2-Delay16 (`ballet_levels`: HCAM, and
         # Transformer-XL with a window over the whole episode), 5e8 steps, SEEDS (1) seeds, side by side, RUNS
         # picks (default HCAM on 4-Delay48); checkpoints of the training state alone: PACK_RUNS=1, RUNS_FROM=DIR
        SEEDS=${SEEDS:-1} side_by_side ballet_levels "${TRAIN_SECONDS:-570}" ${RUNS:-ballet4-delay48-hcam_items_parts_ent0.1_answers_5e8}
        ;;
    90)  # pixel Mortar Mayhem Grid and Mystery Path Grid, GRU, 3 seeds in bf16, as it ships and with 128-step
         # BPTT sequences instead of 256, with kernel traces. As run (H100, 2026-12-07) it also had the variant
         # bf16-shifts, the CNN's convolutions as sums of products over shifted slices: 0.72x as fast as the
         # patches, so that way was removed; its rows stay in the report
        run 430 ppo_profile.py --envs mnemax/MortarMayhem-Grid-v0 mnemax/MysteryPath-Grid-v0 --memories gru \
            --seeds 3 --variants bf16 bf16-bptt128 --repeats 2 --trace --max-seconds 330 \
            ${label:+--device-label $label-pixels-shifts}
        ;;
    91)  # Ballet's curriculum (`ballet_curriculum`): HCAM on 4-Delay16 from the 2-Delay16 run in ../runs/gpu
         # (RUNS_FROM=DIR brings it), then 4-Delay48, 8-Delay16 and 8-Delay48, each from the one before, as far
         # as TRAIN_SECONDS goes; the same command goes on (learning_curves.py refuses to start a level before the
         # one before has trained all its steps). MEMORY=trxl: Transformer-XL's chain, from its own 2-Delay16
         # run. Three seeds, checkpoints of the training state alone: PACK_RUNS=1, RUNS_FROM=DIR goes on
        curriculum ballet_curriculum "${TRAIN_SECONDS:-570}" \
            ${RUNS:-$(preset_runs ballet_curriculum "-${MEMORY:-hcam}_")}
        ;;
    92)  # object permanence with Ballet's recipe and curriculum (`object_permanence`): HCAM on 4-Delay16 from
         # scratch, then 8-Delay48 from it, as far as TRAIN_SECONDS goes (the same command goes on); MEMORY=trxl:
         # Transformer-XL the same. Three seeds, 2e8 steps each, checkpoints of the training state alone:
         # PACK_RUNS=1, RUNS_FROM=DIR goes on
        curriculum object_permanence "${TRAIN_SECONDS:-570}" \
            ${RUNS:-$(preset_runs object_permanence "-${MEMORY:-hcam}_")}
        ;;
    93)  # where the time of HCAM's Ballet update goes (the curriculum's 4-Delay16 run, 3 seeds as trained, ~311 k
         # env steps/s on an H100), as it trains and in bf16, with kernel traces
        run 400 ppo_profile.py --runs ballet_curriculum:ballet4-delay16-hcam_items_parts_ent0.1_answers_curriculum \
            --seeds 3 --variants patches bf16 --repeats 2 --trace --max-seconds 300 ${label:+--device-label $label-hcam-ballet}
        ;;
    94)  # LRU on Ballet-2-Delay16 with the recipe that learned it with HCAM (`ballet_lru`), 2e8 steps, three
         # seeds, in pieces of TRAIN_SECONDS; checkpoints of the training state alone: PACK_RUNS=1, RUNS_FROM=DIR
         # goes on
        piece ballet_lru ballet2-delay16-lru_items_parts_ent0.1_answers_2e8 3 570
        ;;
    95)  # why PPO with LRU stays at chance on Ballet-2-Delay16 (`ballet_lru_ablations`): gradients clipped at a
         # global norm of 100 instead of 0.5, a critic of its own, the entropy bonus 0.01, the learning rate 3e-4,
         # width 256, LRU's phases started within pi / 10, and that with its radii started on [0, 0.999] instead
         # of [0.9, 0.999]; 1e8 steps, three seeds each, side by side, resumable in pieces. Five at once ran out
         # of memory on an H100, so the default is the two phase runs (on an H100 both in 367 s, LABEL=h100-phase:
         # learning_ballet_lru_ablations_h100-phase.md; the five others in learning_ballet_lru_ablations_h100.md);
         # RUNS names others, four at most. PACK_RUNS=1, RUNS_FROM=DIR goes on
        SEEDS=${SEEDS:-3} side_by_side ballet_lru_ablations "${TRAIN_SECONDS:-570}" \
            ${RUNS:-$(preset_runs ballet_lru_ablations phase)}
        ;;
    *) echo "unknown part $part"; exit 2 ;;
esac
if [ -n "${OUT:-}" ]; then tar czf "$OUT/results.tgz" results -C .. docs/gallery; fi  # one file: few may come back
if [ -n "${OUT:-}" ] && [ "${PACK_RUNS:-0}" != 0 ] && [ -d ../runs/gpu ]; then pack_runs; fi
