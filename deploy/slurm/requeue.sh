#!/bin/bash
# Runs a maestro-train command inside a Slurm batch job so that a preemption or the time limit
# loses nothing: Slurm's warning (SIGUSR1 to the batch shell, from `#SBATCH --signal=B:USR1@120`
# or `scancel --signal=USR1 --batch`) is passed to the trainer, which writes a checkpoint and
# exits 3; the job then requeues itself, and its next run continues with --resume auto.
#
#   #SBATCH --requeue --open-mode=append --signal=B:USR1@120
#   deploy/slurm/requeue.sh maestro-train pretrain --config run.yaml --resume auto
#
# Exits with the trainer's status (3 after requeueing). The command is run as given: no part of
# it is evaluated by a shell again.
set -u
if [ $# -eq 0 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
signalled=
trainer=
trap 'signalled=1; [ -n "$trainer" ] && kill -USR1 "$trainer" 2>/dev/null' USR1 TERM
"$@" &
trainer=$!
wait "$trainer"
code=$?
# A trapped signal interrupts `wait`; wait again for the trainer's own status.
while [ -n "$signalled" ]; do
  signalled=
  wait "$trainer"
  code=$?
done
echo "requeue.sh: $1 exited $code (job ${SLURM_JOB_ID:-?}, restart ${SLURM_RESTART_COUNT:-0})"
if [ "$code" -eq 3 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$code"
