#!/usr/bin/env bash
# Start (or reuse) a throwaway Neo4j 5.26 Community DBMS for Parley's tests.
#
#   eval "$(scripts/neo4j-start.sh)"   # exports PARLEY_TEST_NEO4J_URL
#   scripts/neo4j-start.sh --url       # print only the URL (bolt://127.0.0.1:PORT)
#   scripts/neo4j-stop.sh              # stop it and delete its files
#
# Neo4j runs embedded in a small launcher (scripts/neo4j/, built with Maven
# from Maven Central jars; the first build downloads about 160 MB into
# ~/.m2, later ones are offline). The build output is cached in
# $PARLEY_NEO4J_BUILD_DIR (default: ${XDG_CACHE_HOME:-~/.cache}/parley-neo4j),
# one subdirectory per version of the launcher's sources.
#
# The DBMS lives in $PARLEY_NEO4J_DIR (default: ${TMPDIR:-/tmp}/parley-neo4j-<user>),
# with its pid file (neo4j.pid), log (neo4j.log) and Neo4j home (home/, with
# data/ and logs/debug.log). It listens for Bolt on 127.0.0.1 only (port
# $PARLEY_NEO4J_PORT, else 7687 if free, else the next free port), without
# TLS and with authentication disabled, and has no HTTP connector. Heap:
# $PARLEY_NEO4J_HEAP (default 1g); page cache 256 MiB. Extra JVM options:
# $PARLEY_NEO4J_JAVA_OPTS. Start-up waits at most $PARLEY_NEO4J_TIMEOUT
# seconds (default 120).
#
# Idempotent: if the DBMS is already running it is reused; if its files exist
# but it is stopped, it is started again on the same data. Progress goes to
# stderr; stdout carries only the result.
#
# Needs Java 17+ and Maven. As root, if either is missing, they are installed
# from Debian's packages (default-jdk-headless, maven). Set
# PARLEY_APT_UPDATED=1 to skip the `apt-get update` before that install.
# Neo4j does not refuse to run as root, so as root it runs as root.
set -euo pipefail

log() { printf 'neo4j-start: %s\n' "$*" >&2; }
die() { printf 'neo4j-start: error: %s\n' "$*" >&2; exit 1; }

print_url_only=false
for arg in "$@"; do
	case "$arg" in
	--url) print_url_only=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument $arg" ;;
	esac
done

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/neo4j" && pwd)
state=${PARLEY_NEO4J_DIR:-${TMPDIR:-/tmp}/parley-neo4j-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
home=$state/home
main_class=org.parley.neo4j.Launcher
timeout=${PARLEY_NEO4J_TIMEOUT:-120}

# ------------------------------------------------------------ java + maven
java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

find_java() {
	local j major
	for j in ${PARLEY_NEO4J_JAVA:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} $(command -v java || true); do
		major=$(java_major "$j" || true)
		if [[ -x $j && ${major%%.*} =~ ^[0-9]+$ ]] && ((${major%%.*} >= 17)); then
			echo "$j"
			return 0
		fi
	done
	return 1
}

if ! java=$(find_java) || ! command -v mvn >/dev/null; then
	[[ $(id -u) == 0 ]] || die "need Java 17+ (java) and Maven (mvn); install them (Debian: apt-get install default-jdk-headless maven)"
	command -v apt-get >/dev/null || die "need Java 17+ and Maven, and there is no apt-get to install them"
	export DEBIAN_FRONTEND=noninteractive
	apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
	if [[ ${PARLEY_APT_UPDATED:-} != 1 ]]; then
		log "apt-get update"
		"${apt[@]}" update >&2
	fi
	log "installing Java and Maven from Debian (default-jdk-headless maven)"
	"${apt[@]}" install --no-install-recommends default-jdk-headless maven >&2
	java=$(find_java) || die "Java installed but no java 17+ found"
fi
jmajor=$(java_major "$java")
[[ $jmajor == 17 || $jmajor == 21 ]] ||
	log "warning: $java is Java $jmajor; Neo4j 5.26 supports 17 and 21 (set PARLEY_NEO4J_JAVA)"

# ------------------------------------------------------------ state dir
mkdir -p "$state"
chmod 0700 "$state"
touch "$state/.parley-neo4j" # marks the directory as ours, for neo4j-stop.sh

# Serialise concurrent starts (and stops) of the same DBMS.
if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 300 9 || die "timed out waiting for another neo4j-start.sh on $state"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A Bolt handshake: magic 6060B017, then four proposed versions (5.0-5.8,
# 4.4, none, none); a Bolt server answers with the version it picked.
bolt_ok() {
	local reply
	reply=$(timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
		od -An -tx1 -N4 <&3' _ "$1" 2>/dev/null | tr -d ' \n') || return 1
	[[ ${#reply} == 8 && $reply != 00000000 ]]
}

# Whether pid $1 is alive: our own child stays a zombie until reaped, and
# kill -0 succeeds on a zombie.
alive() { [[ -r /proc/$1/stat && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# The launcher's pid if it is running for this state dir (pids get reused).
running_pid() {
	local pid
	pid=$(cat "$state/neo4j.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$main_class $home " || return 1
	echo "$pid"
}

pick_port() {
	local p
	for p in ${PARLEY_NEO4J_PORT:-} $(cat "$state/port" 2>/dev/null) 7687 $(seq 7688 7787); do
		if ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
		[[ $p == "${PARLEY_NEO4J_PORT:-}" ]] && die "PARLEY_NEO4J_PORT=$p is in use"
	done
	die "no free port in 7687-7787"
}

if pid=$(running_pid); then
	port=$(cat "$state/port")
	[[ -z ${PARLEY_NEO4J_PORT:-} || $PARLEY_NEO4J_PORT == "$port" ]] ||
		die "Neo4j already runs in $state on port $port, not PARLEY_NEO4J_PORT=$PARLEY_NEO4J_PORT (stop it first)"
	bolt_ok "$port" || die "Neo4j (pid $pid) in $state does not answer Bolt on port $port (log: $state/neo4j.log)"
	log "reusing the running Neo4j in $state (pid $pid, port $port)"
else
	# ------------------------------------------------------------ build
	# Cache key: the launcher's sources. Rebuilt only when they change or a
	# jar on the recorded classpath has gone from ~/.m2.
	key=$(cd "$src" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
	build=${PARLEY_NEO4J_BUILD_DIR:-${XDG_CACHE_HOME:-${HOME:-$state}/.cache}/parley-neo4j}/$key
	built() {
		local jar
		[[ -f $build/classes/${main_class//.//}.class && -s $build/classpath.txt ]] || return 1
		while read -r -d: jar; do [[ -f $jar ]] || return 1; done < <(tr -d '\n' <"$build/classpath.txt" && echo :)
	}
	if ! built; then
		if [[ -d ${HOME:-/nonexistent}/.m2/repository/org/neo4j/neo4j ]]; then
			log "building the launcher (mvn, $build)"
		else
			log "building the launcher (mvn, $build); the first build downloads ~160 MB from Maven Central"
		fi
		t0=$SECONDS
		if ! mvn -q -B -f "$src/pom.xml" -Dparley.neo4j.build="$build" compile >"$state/mvn.log" 2>&1; then
			tail -n 40 "$state/mvn.log" >&2 || true
			die "mvn failed to build $src (log: $state/mvn.log)"
		fi
		built || die "the build left no launcher in $build"
		log "built in $((SECONDS - t0))s"
	fi

	# ------------------------------------------------------------ start
	port=$(pick_port)
	echo "$port" >"$state/port"
	mkdir -p "$home"
	heap=${PARLEY_NEO4J_HEAP:-1g}
	# JVM options as Neo4j's own server sets them (add-opens for its page
	# cache and native I/O), without the server's large defaults.
	jvm=("-Xmx$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow
		--add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
		--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --enable-native-access=ALL-UNNAMED
		-Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true
		-Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8)
	# shellcheck disable=SC2206 # word splitting of the extra options is intended
	jvm+=(${PARLEY_NEO4J_JAVA_OPTS:-})
	log "starting Neo4j on 127.0.0.1:$port (Java $jmajor, heap $heap, home $home)"
	t0=$SECONDS
	cd "$state"
	: >"$state/neo4j.log"
	# setsid: its own session, so a Ctrl-C in the caller's terminal does not
	# reach it; 9>&-: it must not hold the lock. The subshell is no process
	# group leader, so setsid execs in place and $! is the JVM's pid.
	(exec setsid "$java" "${jvm[@]}" -cp "$build/classes:$(cat "$build/classpath.txt")" \
		"$main_class" "$home" "$port" </dev/null >>"$state/neo4j.log" 2>&1 9>&-) &
	pid=$!
	echo "$pid" >"$state/neo4j.pid"
	ready=false
	while ((SECONDS - t0 < timeout)); do
		if ! alive "$pid"; then
			tail -n 40 "$state/neo4j.log" >&2 || true
			die "Neo4j exited during start-up (log: $state/neo4j.log)"
		fi
		if grep -q '^parley-neo4j: ready' "$state/neo4j.log" && bolt_ok "$port"; then
			ready=true
			break
		fi
		sleep 0.25
	done
	if ! $ready; then
		tail -n 40 "$state/neo4j.log" >&2 || true
		kill -TERM "$pid" 2>/dev/null || true
		die "Neo4j did not accept Bolt connections on port $port within ${timeout}s (log: $state/neo4j.log)"
	fi
	running_pid >/dev/null || die "pid $pid in $state/neo4j.pid is not the launcher"
	log "ready in $((SECONDS - t0))s: pid $pid, bolt://127.0.0.1:$port"
fi

url="bolt://127.0.0.1:$port"
if $print_url_only; then
	echo "$url"
else
	printf "export PARLEY_TEST_NEO4J_URL='%s'\n" "$url"
fi
