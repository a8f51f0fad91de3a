#!/bin/bash
#SBATCH --job-name=hsm-w-grp
#SBATCH --array=0-3
#SBATCH --output=/p/sweeps/outputs/sweep_x/logs/workers/slurm-%A_%a.out
#SBATCH --error=/p/sweeps/outputs/sweep_x/logs/workers/slurm-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --time=04:00:00
#SBATCH --mem=16G
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH --requeue

cd '/home/me/my project' || exit 1
# setup_commands from hsm_config.yaml: one that fails fails the task, which then does not run
hsm_setup_failed() { echo "hsm: setup command $2 exited $1: $3" >&2; exit 1; }
module load cuda
hsm_rc=$?; [ "$hsm_rc" -eq 0 ] || hsm_setup_failed "$hsm_rc" 1 'module load cuda'
exec /usr/bin/python3 -m hsm_core worker --sweep '/home/me/my project/s.yaml' --cluster slurm --project-dir '/home/me/my project' --wandb-buffer
