#!/bin/bash
# Runs a maestro-train command (or srun/mpirun around it) inside a Slurm batch job so that a
# preemption, the time limit or a lost node loses nothing:
# - Slurm's warning (SIGUSR1 to the batch shell, from `#SBATCH --signal=B:USR1@120` or
#   `scancel --signal=USR1 --batch`) is passed to the trainer, which writes a checkpoint and
#   exits 3; the job requeues itself (a preemption costs no restart);
# - any other failure (a rank lost with its node, exit 4, a signal) requeues the job too, at
#   most MAESTRO_MAX_RESTARTS times (default 3), counted in the job's comment;
# - 0 (done) and 2 (a permanent failure: bad config or data) end the job.
# The next run continues with --resume auto.
#
#   #SBATCH --requeue --open-mode=append --signal=B:USR1@120
#   deploy/slurm/requeue.sh srun maestro-train pretrain --config run.yaml --resume auto
#
# Exits with the command's status. The command is run as given: no part of it is evaluated by
# a shell again.
set -u
if [ $# -eq 0 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
max_restarts=${MAESTRO_MAX_RESTARTS:-3}
signalled=
trainer=
trap 'signalled=1; [ -n "$trainer" ] && kill -USR1 "$trainer" 2>/dev/null' USR1 TERM
"$@" &
trainer=$!
wait "$trainer"
code=$?
# A trapped signal interrupts `wait`; wait again for the command's own status.
while [ -n "$signalled" ]; do
  signalled=
  wait "$trainer"
  code=$?
done
job=${SLURM_JOB_ID:-}
echo "requeue.sh: $1 exited $code (job ${job:-?}, restart ${SLURM_RESTART_COUNT:-0})"
if [ -z "$job" ] || [ "$code" -eq 0 ] || [ "$code" -eq 2 ]; then
  exit "$code"
fi
if [ "$code" -ne 3 ]; then
  failures=$(scontrol show job "$job" | sed -n 's/.*Comment=maestro-failures=\([0-9]*\).*/\1/p')
  failures=$(( ${failures:-0} + 1 ))
  if [ "$failures" -gt "$max_restarts" ]; then
    echo "requeue.sh: failed $failures times (MAESTRO_MAX_RESTARTS $max_restarts): not requeued"
    exit "$code"
  fi
  scontrol update JobId="$job" Comment="maestro-failures=$failures"
  echo "requeue.sh: failure $failures of at most $max_restarts: requeued"
fi
scontrol requeue "$job"
exit "$code"
