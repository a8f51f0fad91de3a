#!/bin/bash
#SBATCH --job-name=hsm-w-grp
#SBATCH --array=0-3
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=../../logs/workers/slurm-%A_%a.out
#SBATCH --time=04:00:00
#SBATCH --partition=gpu
#SBATCH --mem=16G
#SBATCH --gres=gpu:1

cd '/home/me/my project' || exit 1
# setup_commands from hsm_config.yaml
module load cuda
exec /usr/bin/python3 -m hsm_core worker --sweep '/home/me/my project/s.yaml' --cluster slurm --project-dir '/home/me/my project' --wandb-buffer
