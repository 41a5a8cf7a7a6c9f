#!/usr/bin/env bash
# Start a real single-node Slurm (slurmctld + slurmd, munge auth) on this machine, for testing the job
# scripts in slurm/.  Root only; installs Debian's slurm-wlm when missing.  Idempotent.
#   bash tools/slurm_local.sh          start (or check) the daemons
#   bash tools/slurm_local.sh stop     stop them
set -euo pipefail
if [ "${1:-}" = stop ]; then scontrol shutdown >/dev/null 2>&1 || true; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "slurm_local: needs root" >&2; exit 1; }
if ! command -v slurmctld >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq slurm-wlm >/dev/null
fi
if scontrol ping 2>/dev/null | grep -q "is UP"; then echo "slurm_local: already up"; exit 0; fi
host=$(hostname)
ncpu=$(nproc)
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$ncpu State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
slurmctld
slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then echo "slurm_local: up ($host, $ncpu CPUs)"; exit 0; fi
  sleep 1
done
echo "slurm_local: daemons did not come up; see /var/log/slurm/" >&2
exit 1
