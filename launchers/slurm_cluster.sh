#!/usr/bin/env bash
# launchers/slurm_cluster.sh -- a real single-node SLURM cluster on one Debian machine.
#
# For the test suite and for trying `hydra/launcher=slurm` on a laptop/VM. Debian 12's own
# packages (SLURM 22.05), everything on loopback, accounting through slurmdbd + MariaDB so that
# a job that dies without writing its result shows in sacct (SIGKILL/OOM: FAILED; scancel:
# CANCELLED) and submitit raises instead of waiting forever. Needs root; works without systemd.
# Test-friendly timings: KillWait=5 s, and a requeued job restarts about 20-25 s later
# (cred_expire=20, sched_interval=5), not SLURM's default 2-3 minutes.
#
#   launchers/slurm_cluster.sh up       install if needed, then start (idempotent, fast when up)
#   launchers/slurm_cluster.sh install  apt-get install the packages, no daemon started
#   launchers/slurm_cluster.sh start    write configs, start mariadb, munged, slurmdbd,
#                                       slurmctld, slurmd; wait for an idle node and sacct
#   launchers/slurm_cluster.sh status   exit 0 iff up (node idle/mixed/allocated, sacct works);
#                                       prints one line either way
#   launchers/slurm_cluster.sh stop     stop the daemons by their PID files, wait for them to go
#   launchers/slurm_cluster.sh restart  stop + start (apply a changed config)
#   launchers/slurm_cluster.sh reconfigure  rewrite the configs and `scontrol reconfigure`
#                                       (apply scheduler settings; running jobs are untouched)
#
# Files: /etc/slurm/slurm.conf and slurmdbd.conf (rewritten on start, marked as ours; a
# slurm.conf not written by this script is never overwritten), state and logs under
# $PREREG_SLURM_STATE. Cluster "prereg", partition "debug", node `hostname -s` at 127.0.0.1.
#
# Environment:
#   PREREG_SLURM_STATE   state dir (default /var/lib/prereg-slurm): logs, spool, MariaDB data
#   PREREG_SLURM_FORCE=1 overwrite /etc/slurm/slurm.conf even if this script did not write it
#   PREREG_SLURM_TIMEOUT seconds to wait for each daemon / the idle node (default 30)
#
# Every failure ends with exit status 1 and one line on stderr: "slurm_cluster.sh: <reason>".
set -euo pipefail

STATE=${PREREG_SLURM_STATE:-/var/lib/prereg-slurm}
WAIT_S=${PREREG_SLURM_TIMEOUT:-30}
ETC=/etc/slurm
RUN=/run/slurm
MYSQL_SOCK=/run/mysqld/mysqld.sock   # libmariadb's default: slurmdbd's StorageHost=localhost uses it
MYSQL_PID=/run/mysqld/prereg-mariadbd.pid   # mariadbd runs as mysql: its files live in mysql-owned places
MUNGE_PID=/run/munge/munged.pid
CLUSTER=prereg
PARTITION=debug
MARKER="# written by prereg launchers/slurm_cluster.sh"
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DB_PASS=prereg-slurmdbd   # loopback/unix-socket only test database; not a secret
HOST=$(hostname -s)

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }
log() { echo "slurm_cluster.sh: $*" >&2; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"; }
last_log_line() { [[ -s $1 ]] && tail -n 1 "$1" | cut -c1-200 || echo "no log at $1"; }

installed() {
  local b
  for b in munged slurmctld slurmd slurmdbd sbatch sacct sacctmgr; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 1
  done
  command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || return 1
}

# --- processes, by PID file only ---------------------------------------------------------
# A PID is "alive" if /proc/PID exists and is not a zombie (PID 1 here reaps slowly) and its
# command name is the expected daemon (guards against a recycled PID in a stale PID file).
pid_alive() {  # pid expected_comm
  local pid=$1 comm=$2 st
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/status ]] || return 1
  st=$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]]
}
pidfile_alive() {  # pidfile comm
  [[ -s $1 ]] && pid_alive "$(tr -dc 0-9 <"$1")" "$2"
}
wait_for() {  # seconds description command...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
stop_pidfile() {  # pidfile comm
  local pf=$1 comm=$2 pid end
  [[ -s $pf ]] || return 0
  pid=$(tr -dc 0-9 <"$pf")
  if pid_alive "$pid" "$comm"; then
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + WAIT_S))
    while pid_alive "$pid" "$comm" && ((SECONDS < end)); do sleep 0.2; done
    if pid_alive "$pid" "$comm"; then
      log "$comm (pid $pid) ignored SIGTERM for ${WAIT_S}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      end=$((SECONDS + 10))
      while pid_alive "$pid" "$comm" && ((SECONDS < end)); do sleep 0.2; done
      pid_alive "$pid" "$comm" && die "could not stop $comm (pid $pid)"
    fi
  fi
  rm -f "$pf"
}

# --- install -----------------------------------------------------------------------------
cmd_install() {
  need_root
  if installed; then log "packages already installed"; return 0; fi
  command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu only"
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e $policy ]]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  POLICY_RESTORE="if [[ -n '$backup' ]]; then mv -f '$backup' '$policy'; else rm -f '$policy'; fi"
  trap 'eval "$POLICY_RESTORE"' EXIT
  printf '#!/bin/sh\n# temporary, from prereg launchers/slurm_cluster.sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
             install --no-install-recommends "${PACKAGES[@]}")
  local t0=$SECONDS
  if ! "${apt[@]}" </dev/null >"/tmp/prereg-slurm-apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get -q update </dev/null >>"/tmp/prereg-slurm-apt.log" 2>&1 \
      || die "apt-get update failed (see /tmp/prereg-slurm-apt.log: $(last_log_line /tmp/prereg-slurm-apt.log))"
    "${apt[@]}" </dev/null >>"/tmp/prereg-slurm-apt.log" 2>&1 \
      || die "apt-get install ${PACKAGES[*]} failed (see /tmp/prereg-slurm-apt.log: $(last_log_line /tmp/prereg-slurm-apt.log))"
  fi
  eval "$POLICY_RESTORE"; trap - EXIT
  installed || die "packages installed but a daemon binary is missing (see /tmp/prereg-slurm-apt.log)"
  log "installed ${PACKAGES[*]} in $((SECONDS - t0)) s"
}

# --- configs -----------------------------------------------------------------------------
write_configs() {
  if [[ -e $ETC/slurm.conf ]] && ! grep -qF "$MARKER" "$ETC/slurm.conf" && [[ ${PREREG_SLURM_FORCE:-0} != 1 ]]; then
    die "$ETC/slurm.conf exists and was not written by this script; refusing to overwrite it (set PREREG_SLURM_FORCE=1 to override)"
  fi
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
  [[ $mem_mb =~ ^[0-9]+$ ]] || die "could not read RealMemory from 'slurmd -C'"
  mem_mb=$((mem_mb * 9 / 10))
  install -d -m 0755 "$ETC" "$RUN" "$STATE" "$STATE/log" "$STATE/ctld" "$STATE/d"
  local tmp
  tmp=$(mktemp "$ETC/.slurm.conf.XXXXXX")
  cat >"$tmp" <<EOF
$MARKER -- single node, loopback only, no cgroups
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=cred_expire=20
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# sched_interval=5 (main scheduler, default 60) and bf_interval=5 (backfill, default 30): a requeued
# job starts within ~5 s of its cred_expire wait, not up to a minute later
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=5
InactiveLimit=0
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
MailProg=/bin/true
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 0644 "$tmp"; mv -f "$tmp" "$ETC/slurm.conf"

  tmp=$(mktemp "$ETC/.slurmdbd.conf.XXXXXX")
  cat >"$tmp" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$tmp"; chown root:root "$tmp"; mv -f "$tmp" "$ETC/slurmdbd.conf"
}

# --- daemons -----------------------------------------------------------------------------
mysql_q() { mariadb --protocol=socket -S "$MYSQL_SOCK" -uroot -N -B -e "$1"; }

start_mariadb() {
  local datadir=$STATE/mysql
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [[ ! -d $datadir/mysql ]]; then
    install -d -o mysql -g mysql -m 0750 "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket \
      --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed (see $STATE/log/mariadb-install.log: $(last_log_line "$STATE/log/mariadb-install.log"))"
  fi
  if ! pidfile_alive "$MYSQL_PID" mariadbd; then
    touch "$STATE/log/mariadb.log"; chown mysql:mysql "$STATE/log/mariadb.log"
    setsid mariadbd --no-defaults --user=mysql --datadir="$datadir" --socket="$MYSQL_SOCK" \
      --pid-file="$MYSQL_PID" --skip-networking --log-error="$STATE/log/mariadb.log" \
      --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for "$WAIT_S" mariadb mysql_q "SELECT 1" \
      || die "mariadb did not answer on $MYSQL_SOCK within ${WAIT_S}s (see $STATE/log/mariadb.log: $(last_log_line "$STATE/log/mariadb.log"))"
  fi
  mysql_q "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
           CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" \
    || die "could not create the accounting database/user in mariadb"
}

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 || die "could not create /etc/munge/munge.key"
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  if ! pidfile_alive "$MUNGE_PID" munged; then
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" </dev/null >/dev/null 2>&1 \
      || die "munged failed to start (see /var/log/munge/munged.log: $(last_log_line /var/log/munge/munged.log))"
  fi
  wait_for "$WAIT_S" munge bash -c 'munge -n | unmunge' \
    || die "munge credentials do not round-trip (munge -n | unmunge failed)"
}

start_daemon() {  # name pidfile ready-check...
  local name=$1 pf=$2; shift 2
  if ! pidfile_alive "$pf" "$name"; then
    "/usr/sbin/$name" </dev/null >>"$STATE/log/$name.stdout" 2>&1 \
      || die "$name exited at start (see $STATE/log/$name.log: $(last_log_line "$STATE/log/$name.log"))"
  fi
  wait_for "$WAIT_S" "$name" pidfile_alive "$pf" "$name" \
    || die "$name did not stay up (see $STATE/log/$name.log: $(last_log_line "$STATE/log/$name.log"))"
  if (($#)); then
    wait_for "$WAIT_S" "$name" "$@" \
      || die "$name is running but not answering within ${WAIT_S}s (see $STATE/log/$name.log: $(last_log_line "$STATE/log/$name.log"))"
  fi
}

node_state() { { timeout 10 sinfo -h -n "$HOST" -o %T 2>/dev/null || true; } | head -n 1 | tr -d '*~#!%$@^-'; }
node_usable() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }
sacct_ok() { timeout 10 sacct -n -X -S now-1minute >/dev/null 2>&1; }
dbd_ok() { timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

cmd_start() {
  need_root
  installed || die "SLURM packages not installed (run: $0 install, or $0 up)"
  local t0=$SECONDS
  write_configs
  start_mariadb
  start_munge
  start_daemon slurmdbd "$RUN/slurmdbd.pid" dbd_ok
  if ! timeout 10 sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
    timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 \
      || die "sacctmgr could not register cluster $CLUSTER (see $STATE/log/slurmdbd.log: $(last_log_line "$STATE/log/slurmdbd.log"))"
  fi
  start_daemon slurmctld "$RUN/slurmctld.pid" timeout 5 scontrol ping
  start_daemon slurmd "$RUN/slurmd.pid"
  # A node left DOWN/DRAINED from an earlier run: bring it back.
  if [[ $(node_state) =~ ^(down|drained|draining|fail|failing)$ ]]; then
    timeout 10 scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  fi
  wait_for "$WAIT_S" node node_usable \
    || die "node $HOST not idle after ${WAIT_S}s (state: '$(node_state)'; see $STATE/log/slurmd.log and slurmctld.log: $(last_log_line "$STATE/log/slurmctld.log"))"
  wait_for "$WAIT_S" sacct sacct_ok \
    || die "sacct does not work after ${WAIT_S}s (accounting via slurmdbd; see $STATE/log/slurmdbd.log: $(last_log_line "$STATE/log/slurmdbd.log"))"
  log "started in $((SECONDS - t0)) s"
  cmd_status
}

cmd_status() {
  if ! command -v sinfo >/dev/null 2>&1; then echo "slurm down: not installed"; return 1; fi
  local st ver
  if [[ -e $ETC/slurm.conf ]] && grep -qF "$MARKER" "$ETC/slurm.conf"; then
    # Our own cluster: answer at once instead of waiting ~9 s for sinfo's connect retries.
    pidfile_alive "$RUN/slurmctld.pid" slurmctld || { echo "slurm down: slurmctld not running"; return 1; }
    pidfile_alive "$RUN/slurmd.pid" slurmd || { echo "slurm down: slurmd not running"; return 1; }
  fi
  st=$(node_state)
  if [[ -z $st ]]; then echo "slurm down: sinfo gets no answer from slurmctld (node $HOST)"; return 1; fi
  if ! node_usable; then echo "slurm down: node $HOST is $st"; return 1; fi
  if ! sacct_ok; then echo "slurm down: node $HOST is $st but sacct fails (slurmdbd/mariadb not up)"; return 1; fi
  ver=$(sinfo -V 2>/dev/null | awk '{print $2}')
  echo "slurm up: cluster $(timeout 5 scontrol show config 2>/dev/null | awk '/^ClusterName/{print $3}') node $HOST $st," \
       "$(timeout 5 sinfo -h -n "$HOST" -o '%c CPUs %m MB' | head -n 1), partition $(timeout 5 sinfo -h -o %P | head -n 1 | tr -d '*')," \
       "accounting ok, SLURM $ver"
}

cmd_stop() {
  need_root
  local t0=$SECONDS
  stop_pidfile "$RUN/slurmd.pid" slurmd
  stop_pidfile "$RUN/slurmctld.pid" slurmctld
  stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
  stop_pidfile "$MYSQL_PID" mariadbd
  stop_pidfile "$MUNGE_PID" munged
  log "stopped in $((SECONDS - t0)) s"
}

cmd_reconfigure() {
  need_root
  cmd_status >/dev/null 2>&1 || die "not up: $(cmd_status 2>/dev/null || true) (use: $0 up)"
  write_configs
  timeout 30 scontrol reconfigure >/dev/null 2>&1 \
    || die "scontrol reconfigure failed (see $STATE/log/slurmctld.log: $(last_log_line "$STATE/log/slurmctld.log"))"
  wait_for "$WAIT_S" node node_usable || die "node $HOST not usable after reconfigure (state: '$(node_state)')"
  cmd_status
}

cmd_up() {
  if cmd_status >/dev/null 2>&1; then cmd_status; return 0; fi
  need_root
  installed || cmd_install
  cmd_start
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  up) cmd_up ;;
  restart) cmd_stop; cmd_start ;;
  reconfigure) cmd_reconfigure ;;
  *) echo "usage: $0 {up|install|start|status|stop|restart|reconfigure}" >&2; exit 2 ;;
esac
