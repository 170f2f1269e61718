#!/usr/bin/env bash
# A real containerd with its CRI plugin, for the Kubernetes-attribution tests: pods without kubelet.
# Facts behind each setting: shared notes, containers.md section B.
#   containerd.sh install  Debian packages: containerd, runc, CNI plugins, buildah (images), gcc (pause)
#   containerd.sh images   build the pause and busybox images into the cache (once)
#   containerd.sh up       install, images, own config, start containerd, import the images (k8s.io)
#   containerd.sh stop     stop containerd only (SIGTERM by pid); pods' shims keep running, as on a node
#   containerd.sh down     stop, then remove its state dir and the shims' /run/containerd leftovers
#   containerd.sh status   exit 0 when containerd is alive
#   containerd.sh socket   print the CRI socket path
# Nothing is written under /etc: containerd runs on its own config, root, state dir and socket.
# EKP_CONTAINERD_RUN (default /run/ekp-containerd: socket, state, pid, log) and EKP_CONTAINERD_ROOT
# (default $EKP_CACHE/containerd-root: images and snapshots, kept between runs) allow another instance. Callers that share a
# machine hold /tmp/ekp-test.lock around it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${EKP_CACHE:-$HOME/.cache/ebpf-kafka-producer}
run=${EKP_CONTAINERD_RUN:-/run/ekp-containerd}
root=${EKP_CONTAINERD_ROOT:-$cache/containerd-root}
sock=$run/containerd.sock
pidfile=$run/containerd.pid
logfile=$run/containerd.log
# The images the tests use; the sandbox image is named in the config below.
PAUSE_IMAGE=localhost/ekp-pause:1
BUSYBOX_IMAGE=localhost/ekp-busybox:1

log() { printf 'containerd: %s\n' "$*" >&2; }
# shellcheck source=service.sh
. "$here/service.sh"
# shellcheck source=apt.sh
. "$here/apt.sh"

install() {
  [ "$(id -u)" -eq 0 ] || { log "must run as root (packages, cgroups, mounts)"; exit 1; }
  ensure_packages containerd runc containernetworking-plugins buildah gcc libc6-dev
}

# The images depend on this script and the pause source only (busybox is whichever Debian 12 ships).
images_dir() { echo "$cache/cri-images-$(cat "$0" "$here/containerd/pause.c" | sha256sum | cut -c1-12)"; }

images() {
  install
  local out; out=$(images_dir)
  [ -f "$out/.complete" ] && return 0
  log "building $PAUSE_IMAGE and $BUSYBOX_IMAGE into $out"
  local start=$SECONDS
  build_images "$out"
  touch "$out/.complete"
  find "$cache" -maxdepth 1 -name 'cri-images-*' ! -path "$out" -exec rm -rf {} +  # older builds
  log "images built in $((SECONDS - start)) s: $(du -sh "$out" | cut -f1)"
}

# In a subshell: its EXIT trap removes the work dir however it ends.
build_images() (
  local out=$1 work c applet
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # vfs storage of its own: no overlay mounts to leak, and the host's podman/buildah store is untouched
  local b=(buildah --root "$work/storage" --runroot "$work/runroot" --storage-driver vfs)

  gcc -Os -static -o "$work/pause" "$here/containerd/pause.c"
  # busybox from Debian's static build: unpacked, not installed; its applets as links, as --install does
  (cd "$work" && { apt-get download -qq -o APT::Sandbox::User=root busybox-static || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root busybox-static; }; } >/dev/null)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
  mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp"
  cp "$work/deb/bin/busybox" "$work/rootfs/bin/busybox"
  for applet in $("$work/rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
  done

  mkdir -p "$out"
  c=$("${b[@]}" from scratch)
  "${b[@]}" copy "$c" "$work/pause" /pause >/dev/null
  "${b[@]}" config --entrypoint '["/pause"]' "$c"
  "${b[@]}" commit -q "$c" "$PAUSE_IMAGE" >/dev/null
  "${b[@]}" push -q "$PAUSE_IMAGE" "docker-archive:$out/pause.tar:$PAUSE_IMAGE"
  c=$("${b[@]}" from scratch)
  "${b[@]}" copy "$c" "$work/rootfs" / >/dev/null
  "${b[@]}" config --cmd '["/bin/sh"]' --env PATH=/bin "$c"
  "${b[@]}" commit -q "$c" "$BUSYBOX_IMAGE" >/dev/null
  "${b[@]}" push -q "$BUSYBOX_IMAGE" "docker-archive:$out/busybox.tar:$BUSYBOX_IMAGE"
  "${b[@]}" rm --all >/dev/null
)

write_config() {
  mkdir -p "$run/cni" "$root"
  cat > "$run/config.toml" <<EOF
version = 2
root = "$root"
state = "$run/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$root/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # CRI gives sandboxes oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which root lacks here
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$run/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # no systemd here: cgroupfs paths, <cgroup_parent>/<container id>, as kubelet's cgroupfs driver
        SystemdCgroup = false
        Root = "$run/runc"
EOF
}

ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

answers() { [ -S "$sock" ] && ctr_ version >/dev/null 2>&1; }

up() {
  images
  if alive && answers; then log "already up on $sock"; return 0; fi
  mkdir -p "$run"
  write_config
  if ! alive; then
    nohup containerd --config "$run/config.toml" >"$logfile" 2>&1 &
    echo $! > "$pidfile"
  fi
  wait_ready answers "up on $sock" "$logfile"
  local out; out=$(images_dir)
  ctr_ images import "$out/pause.tar" >/dev/null
  ctr_ images import "$out/busybox.tar" >/dev/null
}

# The runc-v2 shim keeps its sockets under /run/containerd/s whatever the config says. Removed only
# when no shim of ours is left and no containerd of the host's own uses that directory.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = containerd-shim ] || continue  # comm is cut at 15 characters
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "-address $sock " && printf '%s ' "${p#/proc/}"
  done
  return 0
}

down() {
  stop 10
  local shims; shims=$(our_shims)
  if [ -n "$shims" ]; then
    log "shims still running (pids $shims): remove their pods first; leaving $run and /run/containerd"
    return 0
  fi
  rm -rf "$run"
  if [ ! -S /run/containerd/containerd.sock ]; then rm -rf /run/containerd; fi
}

case "${1:-}" in
  install) install ;;
  images) images ;;
  up) up ;;
  stop) stop 10 ;;
  down) down ;;
  status) alive ;;
  socket) echo "$sock" ;;
  *) echo "usage: $0 install|images|up|stop|down|status|socket" >&2; exit 2 ;;
esac
