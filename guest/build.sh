#!/usr/bin/env bash
# Reproducible build of wasmvisor's bundled guest images from Debian packages.
#
#   guest/build.sh [all]       firmware + kernel + initramfs + PROVENANCE.json  (guest/images/)
#   guest/build.sh firmware    OpenSBI fw_dynamic.bin / fw_jump.bin            (guest/images/)
#   guest/build.sh kernel      Image.gz from linux-source-6.1 + guest/kernel.config
#   guest/build.sh initramfs   initramfs.cpio.gz from busybox-static
#   guest/build.sh provenance  rewrite guest/images/PROVENANCE.json
#   guest/build.sh stock       Debian's own riscv64 kernel + a module-loading initramfs,
#                              and GRUB's EFI image as Debian's images boot it
#                              (guest/work/stock/, never committed)
#
# Run as root on Debian 12 (bookworm). Host packages are installed when missing.
# riscv64 packages come from the archive the host's apt already uses, through a private
# apt state under guest/work/apt (the host's apt state is not touched); downloaded .debs
# are kept in guest/cache/ and reused on the next run.
#
# Environment:
#   GUEST_SUITES        suites to try for riscv64 packages, in order (default "trixie forky sid")
#   SOURCE_DATE_EPOCH   timestamp for every output (default: date of linux-source-6.1's
#                       Debian changelog entry)
#   JOBS                make -j (default 2)
#   APT_TRUSTED=1       use [trusted=yes] instead of the Debian archive keyring
#   GUEST_UPDATE=1      take the suite's current package versions instead of those locked
#                       in guest/images/PROVENANCE.json
set -Eeuo pipefail
trap 'echo "[guest] error: line $LINENO: $BASH_COMMAND failed" >&2' ERR

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES=$GUEST_DIR/images
WORK=$GUEST_DIR/work
CACHE=$GUEST_DIR/cache
JOBS=${JOBS:-2}
SUITES=${GUEST_SUITES:-trixie forky sid}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
CROSS=riscv64-linux-gnu-
LINUX_SRC_PKG=linux-source-6.1
LINUX_SRC_TAR=/usr/src/linux-source-6.1.tar.xz
KERNEL_CONFIG=$GUEST_DIR/kernel.config

HOST_PACKAGES=(
  gcc-riscv64-linux-gnu "$LINUX_SRC_PKG" make gcc libc6-dev bc flex bison libelf-dev libssl-dev
  cpio xz-utils zstd kmod gzip dpkg-dev qemu-user-static debian-archive-keyring ca-certificates
)

log() { printf '\033[1m[guest]\033[0m %s\n' "$*" >&2; }
die() {
  printf '[guest] error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------------------
ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  [[ $(id -u) == 0 ]] || die "missing host packages (run as root to install): ${missing[*]}"
  log "installing host packages: ${missing[*]}"
  # Wait for another apt/dpkg (e.g. a provisioning script) instead of failing on its lock.
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${missing[@]}"
}

# SOURCE_DATE_EPOCH: one fixed timestamp for kernel build stamps and cpio mtimes, taken from
# the packaged sources so that it only changes when the inputs do.
init_epoch() {
  if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    local cl=/usr/share/doc/$LINUX_SRC_PKG/changelog.Debian.gz
    [[ -r $cl ]] || die "cannot read $cl to derive SOURCE_DATE_EPOCH"
    SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$cl" -S Timestamp)
  fi
  export SOURCE_DATE_EPOCH
}

# ---------------------------------------------------------------------------------------
# riscv64 packages through a private apt state
# ---------------------------------------------------------------------------------------
APT_SUITE=''

# host_archive_uri, apt_field, apt_private: guest/apt-archive.sh
# shellcheck source=apt-archive.sh
source "$GUEST_DIR/apt-archive.sh"

# apt_use SUITE → APT_OPTS for the private riscv64 state of SUITE; fails when its index does not
# download and verify (trixie's riscv64 Packages file failed for weeks with "File has unexpected
# size").
apt_use() {
  apt_private riscv64 "$1" "$WORK/apt/$1" && return 0
  log "apt: suite $1 failed: $APT_ERROR"
  return 1
}

# apt_setup → APT_SUITE (the first of $SUITES whose index works) and APT_OPTS for it.
apt_setup() {
  local suite
  if [[ -z $APT_SUITE ]]; then
    for suite in $SUITES; do
      if apt_use "$suite"; then
        APT_SUITE=$suite
        log "apt: using suite $suite"
        break
      fi
    done
    [[ -n $APT_SUITE ]] ||
      die "no suite of [$SUITES] has a usable riscv64 index (logs in $WORK/apt/*/update.log)"
  fi
  apt_use "$APT_SUITE"
}

# The versions recorded in guest/images/PROVENANCE.json are the lock: a rebuild uses exactly
# those .debs (from guest/cache/ without touching the network, or downloaded and checked
# against the recorded sha256), so it reproduces the committed images. GUEST_UPDATE=1 takes
# the suite's current versions instead (and the next PROVENANCE.json records them).
LOCK=$GUEST_DIR/images/PROVENANCE.json

# The bundled images' targets hold to the lock (LOCK_STRICT=1: a locked version gone from the
# archive is an error). `stock` builds nothing committed and follows Debian's current kernel
# anyway, so it prefers the locked userland but takes the current one when the archive has
# moved on (LOCK_STRICT=0, set in main).
LOCK_STRICT=1

recorded() { # package field → value the lock records, or nothing
  [[ -f $LOCK ]] || return 0
  grep -F "\"name\": \"$1\"," "$LOCK" | grep -o "\"$2\": \"[^\"]*\"" | cut -d'"' -f4 || true
}

locked() { # package field → the locked value (nothing under GUEST_UPDATE=1: take the current)
  [[ ${GUEST_UPDATE:-0} == 1 ]] && return 0
  recorded "$@"
}

# fetch_deb PACKAGE → DEB = path of the verified .deb in guest/cache/; the package is recorded
# (name, version, architecture, suite, sha256) in $WORK/debs/<package> for PROVENANCE.json.
DEB=''
fetch_deb() {
  local pkg=$1 ver arch sum suite file
  ver=$(locked "$pkg" version)
  if [[ -n $ver ]]; then
    arch=$(locked "$pkg" architecture)
    sum=$(locked "$pkg" sha256)
    suite=$(locked "$pkg" suite)
    file=$CACHE/${pkg}_${ver#*:}_${arch}.deb
    # Not cached: the locked .deb from the suite it was taken from, else from the current one.
    if ! echo "$sum  $file" | sha256sum -c --quiet - >/dev/null 2>&1; then
      if [[ -n $suite ]] && apt_use "$suite" && [[ $(apt_field "$pkg=$ver" SHA256) == "$sum" ]]; then
        :
      elif apt_setup && [[ $(apt_field "$pkg=$ver" SHA256) == "$sum" ]]; then
        suite=$APT_SUITE
      elif [[ $LOCK_STRICT == 1 ]]; then
        die "$pkg $ver (sha256 $sum, locked in guest/images/PROVENANCE.json) is not in" \
          "${suite:+$suite or }$APT_SUITE/riscv64 any more; rerun with GUEST_UPDATE=1 to take the current version"
      else
        log "warning: $pkg $ver (locked in guest/images/PROVENANCE.json) is not in" \
          "${suite:+$suite or }$APT_SUITE/riscv64 any more; taking its current version"
        ver=''
      fi
    fi
  fi
  if [[ -z $ver ]]; then
    apt_setup
    ver=$(apt_field "$pkg" Version)
    [[ -n $ver ]] || die "package $pkg not found in $APT_SUITE/riscv64"
    arch=$(apt_field "$pkg" Architecture)
    sum=$(apt_field "$pkg" SHA256)
    suite=$APT_SUITE
    file=$CACHE/${pkg}_${ver#*:}_${arch}.deb
  fi
  mkdir -p "$CACHE" "$WORK/debs"
  if ! echo "$sum  $file" | sha256sum -c --quiet - >/dev/null 2>&1; then
    log "downloading $pkg $ver ($arch, $suite)"
    rm -rf "$WORK/download"
    mkdir -p "$WORK/download"
    # apt-get download writes NAME_VERSION_ARCH.deb with the epoch's ':' escaped as %3a;
    # the cache uses the pool's name (no epoch) instead.
    (cd "$WORK/download" && apt-get "${APT_OPTS[@]}" -qq download "$pkg=$ver") >&2
    mv "$WORK/download/"*.deb "$file"
    echo "$sum  $file" | sha256sum -c --quiet - || die "checksum mismatch for $file"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$ver" "$arch" "$suite" "$sum" >"$WORK/debs/$pkg"
  DEB=$file
}

# extract_deb PACKAGE DIR → DIR holds the package's files
extract_deb() {
  fetch_deb "$1"
  rm -rf "$2"
  mkdir -p "$2"
  dpkg-deb -x "$DEB" "$2"
}

# ---------------------------------------------------------------------------------------
# firmware
# ---------------------------------------------------------------------------------------
build_firmware() {
  local x=$WORK/pkg/opensbi fw=usr/lib/riscv64-linux-gnu/opensbi/generic
  extract_deb opensbi "$x"
  mkdir -p "$IMAGES"
  install -m 0644 "$x/$fw/fw_dynamic.bin" "$x/$fw/fw_jump.bin" "$IMAGES/"
  log "firmware: fw_dynamic.bin $(stat -c %s "$IMAGES/fw_dynamic.bin") bytes," \
    "fw_jump.bin $(stat -c %s "$IMAGES/fw_jump.bin") bytes"
}

# ---------------------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------------------
KSRC=$WORK/linux-6.1
KOUT=$WORK/linux-build

kernel_source() {
  local stamp
  stamp="$(dpkg-query -W -f='${Version}' "$LINUX_SRC_PKG") $(stat -c %s "$LINUX_SRC_TAR")"
  if [[ -f $KSRC/.wasmvisor-stamp && $(cat "$KSRC/.wasmvisor-stamp") == "$stamp" ]]; then
    return
  fi
  log "kernel: unpacking $LINUX_SRC_TAR"
  rm -rf "$KSRC" "$KOUT" "$WORK/linux-source-6.1"
  tar -C "$WORK" -xf "$LINUX_SRC_TAR"
  mv "$WORK/linux-source-6.1" "$KSRC"
  echo "$stamp" >"$KSRC/.wasmvisor-stamp"
}

kmake() {
  make -C "$KSRC" O="$KOUT" ARCH=riscv CROSS_COMPILE=$CROSS \
    KBUILD_BUILD_TIMESTAMP="$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH")" KBUILD_BUILD_USER=wasmvisor \
    KBUILD_BUILD_HOST=guest-build KBUILD_BUILD_VERSION=1 "$@"
}

# Every line of the fragment must hold in the final .config (a symbol that olddefconfig
# silently dropped, e.g. because of an unmet dependency, is an error, not a surprise later).
check_kernel_config() {
  local line sym bad=0
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      grep -qxF "$line" "$KOUT/.config" || {
        log "kernel.config: wanted '$line', got '$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$KOUT/.config" || echo unset)'"
        bad=1
      }
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      sym=${BASH_REMATCH[1]}
      if grep -qE "^$sym=" "$KOUT/.config"; then
        log "kernel.config: wanted $sym off, got '$(grep -E "^$sym=" "$KOUT/.config")'"
        bad=1
      fi
    fi
  done <"$KERNEL_CONFIG"
  ((bad == 0)) || die 'kernel config does not match guest/kernel.config (see above)'
}

build_kernel() {
  kernel_source
  mkdir -p "$KOUT"
  log "kernel: tinyconfig + guest/kernel.config"
  kmake -s tinyconfig
  # merge_config.sh -m: merge only; then olddefconfig resolves dependencies.
  (cd "$KOUT" && ARCH=riscv CROSS_COMPILE=$CROSS \
    "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$KOUT" "$KOUT/.config" "$KERNEL_CONFIG" \
    >"$WORK/merge_config.log")
  kmake -s olddefconfig
  check_kernel_config
  log "kernel: make -j$JOBS Image.gz (log: guest/work/kernel-build.log)"
  if ! kmake -j"$JOBS" Image.gz >"$WORK/kernel-build.log" 2>&1; then
    tail -40 "$WORK/kernel-build.log" >&2
    die 'kernel build failed'
  fi
  mkdir -p "$IMAGES"
  install -m 0644 "$KOUT/arch/riscv/boot/Image.gz" "$IMAGES/Image.gz"
  log "kernel: $(du -b "$KOUT/arch/riscv/boot/Image" | cut -f1) bytes raw," \
    "$(du -b "$IMAGES/Image.gz" | cut -f1) bytes gzipped"
}

# ---------------------------------------------------------------------------------------
# initramfs
# ---------------------------------------------------------------------------------------
# Applets to link when the riscv64 busybox cannot be asked for its own list.
FALLBACK_APPLETS='
bin/sh bin/ash bin/cat bin/chmod bin/chown bin/cp bin/date bin/dd bin/df bin/dmesg bin/echo
bin/false bin/grep bin/gunzip bin/gzip bin/hostname bin/kill bin/ln bin/ls bin/mkdir
bin/mknod bin/more bin/mount bin/mv bin/ping bin/ps bin/pwd bin/rm bin/rmdir bin/sed
bin/sleep bin/stty bin/sync bin/tar bin/touch bin/true bin/umount bin/uname bin/vi
bin/cttyhack bin/ip bin/netstat bin/zcat bin/dd bin/egrep bin/fgrep bin/login bin/su
sbin/init sbin/halt sbin/poweroff sbin/reboot sbin/ifconfig sbin/route sbin/insmod
sbin/rmmod sbin/lsmod sbin/modprobe sbin/mdev sbin/udhcpc sbin/getty sbin/losetup
sbin/switch_root sbin/hwclock sbin/sysctl sbin/blkid sbin/mkswap sbin/swapon sbin/swapoff
usr/bin/awk usr/bin/basename usr/bin/clear usr/bin/cmp usr/bin/cut usr/bin/dirname
usr/bin/du usr/bin/env usr/bin/expr usr/bin/find usr/bin/free usr/bin/head usr/bin/hexdump
usr/bin/id usr/bin/killall usr/bin/less usr/bin/md5sum usr/bin/mkfifo usr/bin/nc
usr/bin/nslookup usr/bin/od usr/bin/printf usr/bin/readlink usr/bin/reset usr/bin/seq
usr/bin/sha256sum usr/bin/sort usr/bin/strings usr/bin/tail usr/bin/tee usr/bin/telnet
usr/bin/test usr/bin/time usr/bin/top usr/bin/tr usr/bin/tty usr/bin/uniq usr/bin/uptime
usr/bin/wc usr/bin/wget usr/bin/which usr/bin/xargs usr/bin/yes usr/bin/[ usr/bin/[[
usr/sbin/chroot usr/sbin/httpd usr/sbin/telnetd usr/sbin/rdate usr/sbin/ntpd
'

busybox_applets() { # busybox binary → "dir/applet" lines
  local list=''
  if command -v qemu-riscv64-static >/dev/null; then
    list=$(qemu-riscv64-static "$1" --list-full 2>/dev/null || true)
  fi
  if [[ -z $list ]]; then
    log 'initramfs: cannot run the riscv64 busybox (qemu-user-static?); using the fallback applet list'
    list=$FALLBACK_APPLETS
  fi
  tr -s ' \t' '\n\n' <<<"$list" | sed 's#^/##' | grep -v -e '^$' -e '^bin/busybox$' | LC_ALL=C sort -u
}

# write_rootfs_files DIR: the files of the initramfs that are ours, not busybox's
write_rootfs_files() {
  local r=$1
  mkdir -p "$r/etc/init.d" "$r/etc/udhcpc"
  cat >"$r/etc/inittab" <<'EOF'
# busybox init: see guest/README.md
::sysinit:/etc/init.d/rcS
::respawn:-/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
  cat >"$r/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# wasmvisor guest: early userspace setup (run once by init, see /etc/inittab)
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
hostname wasmvisor
# Kernel modules (only in the initramfs of Debian's stock kernel), in dependency order.
if [ -f /etc/modules.order ]; then
  while read -r m; do
    [ -n "$m" ] && { insmod "/lib/modules/$m" || echo "rcS: insmod $m failed"; }
  done </etc/modules.order
fi
ip link set lo up 2>/dev/null
# Every Ethernet NIC comes up and asks for a DHCP lease in the background, so a guest on net=user
# has 10.0.2.15, its route and DNS by the time the shell starts. Where nothing answers (a switch,
# no cable) the client gives up after three tries; /etc/udhcpc/boot.script never takes away an
# address someone set meanwhile.
for n in /sys/class/net/*; do
  [ "$(cat "$n/type" 2>/dev/null)" = 1 ] || continue # ARPHRD_ETHER
  udhcpc -i "${n##*/}" -s /etc/udhcpc/boot.script -n -t 3 -T 2 >/dev/null 2>&1 &
done
read -r up _ </proc/uptime
echo "wasmvisor: userspace up: $(uname -sr) at ${up}s"
EOF
  chmod 0755 "$r/etc/init.d/rcS"
  cat >"$r/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export PS1='\h:\w# '
cd "$HOME"
EOF
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
  printf 'wasmvisor\n' >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\twasmvisor\n' >"$r/etc/hosts"
  # Debian's busybox runs /etc/udhcpc/default.script (CONFIG_UDHCPC_DEFAULT_SCRIPT)
  cat >"$r/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configure the interface, default route and DNS from the lease
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
EOF
  chmod 0755 "$r/etc/udhcpc/default.script"
  # The boot-time client's hook (rcS): like default.script, but it leaves alone an interface
  # that has an IPv4 address it did not give it (one set by hand, or by another udhcpc).
  cat >"$r/etc/udhcpc/boot.script" <<'EOF'
#!/bin/sh
# udhcpc hook for the DHCP client rcS starts on each NIC at boot
mine=/run/udhcpc.$interface
case "$1" in
  deconfig)
    ip link set "$interface" up
    ;;
  bound|renew)
    new=$ip/${mask:-24}
    if [ -f "$mine" ]; then
      old=$(cat "$mine")
      [ "$old" != "$new" ] && ip -4 addr del "$old" dev "$interface" 2>/dev/null
    elif [ -n "$(ip -4 -o addr show dev "$interface")" ]; then
      exit 0
    fi
    ip -4 addr add "$new" dev "$interface" 2>/dev/null
    echo "$new" >"$mine"
    [ -n "$router" ] && for r in $router; do ip route add default via "$r" dev "$interface" 2>/dev/null; break; done
    if [ -n "$dns" ]; then
      : >/etc/resolv.conf
      for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    fi
    ;;
esac
exit 0
EOF
  chmod 0755 "$r/etc/udhcpc/boot.script"
}

GEN_INIT_CPIO=$WORK/gen_init_cpio

build_gen_init_cpio() {
  kernel_source
  [[ -x $GEN_INIT_CPIO && $GEN_INIT_CPIO -nt $KSRC/usr/gen_init_cpio.c ]] && return
  cc -O2 -o "$GEN_INIT_CPIO" "$KSRC/usr/gen_init_cpio.c"
}

# make_cpio ROOTDIR APPLETS_FILE OUT.cpio.gz SPEC  (SPEC: where to keep the gen_init_cpio
# spec, for inspection)
# A newc archive, entries sorted, owned by 0:0, every mtime = SOURCE_DATE_EPOCH, gzip -n:
# the same inputs give the same bytes.
make_cpio() {
  local root=$1 applets=$2 out=$3 spec p mode
  spec=$(mktemp "$WORK/cpio-spec.XXXXXX")
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  {
    printf 'dir /dev 0755 0 0\n'
    printf 'nod /dev/console 0600 0 0 c 5 1\n'
    printf 'nod /dev/null 0666 0 0 c 1 3\n'
    # The kernel runs /init from an initramfs; without it, it looks for a root= device.
    printf 'slink /init /sbin/init 0777 0 0\n'
    (cd "$root" && find . -mindepth 1 | sed 's#^\./##' | LC_ALL=C sort) | while IFS= read -r p; do
      [[ $p == dev ]] && continue
      mode=$(stat -c %a "$root/$p")
      if [[ -L $root/$p ]]; then
        printf 'slink /%s %s 0777 0 0\n' "$p" "$(readlink "$root/$p")"
      elif [[ -d $root/$p ]]; then
        printf 'dir /%s %s 0 0\n' "$p" "$mode"
      else
        printf 'file /%s %s %s 0 0\n' "$p" "$root/$p" "$mode"
      fi
    done
    sed 's#^\(.*\)$#slink /\1 /bin/busybox 0777 0 0#' "$applets"
  } | LC_ALL=C sort -k2,2 -u >"$spec"
  # Directories sort before their contents (a path is a prefix of its children), so
  # sorting the whole spec by path keeps the archive extractable in order.
  "$GEN_INIT_CPIO" -t "$SOURCE_DATE_EPOCH" "$spec" | gzip -n -9 >"$out"
  # Zeros up to a multiple of 4 bytes (gzip ignores them): the kernel finds a cpio archive
  # appended after this one only at a 4-byte aligned offset.
  local size
  size=$(stat -c %s "$out")
  head -c $(((4 - size % 4) % 4)) /dev/zero >>"$out"
  mv "$spec" "$4"
}

# stage_busybox_root DIR: busybox + our files (no device nodes; make_cpio adds those)
stage_busybox_root() {
  local r=$1 x=$WORK/pkg/busybox-static d bb
  extract_deb busybox-static "$x"
  rm -rf "$r"
  for d in bin sbin usr/bin usr/sbin etc proc sys tmp run root mnt var/log lib; do
    mkdir -p "$r/$d"
  done
  # /bin/busybox before the /usr merge, /usr/bin/busybox after it
  for bb in "$x/usr/bin/busybox" "$x/bin/busybox" ''; do [[ -f $bb ]] && break; done
  [[ -n $bb ]] || die 'no busybox binary in busybox-static'
  install -m 0755 "$bb" "$r/bin/busybox"
  write_rootfs_files "$r"
  busybox_applets "$r/bin/busybox" | while IFS= read -r p; do
    [[ -e $r/$p ]] || printf '%s\n' "$p"
  done >"$WORK/applets.txt"
  grep -qx 'bin/cttyhack' "$WORK/applets.txt" || die 'busybox has no cttyhack applet'
  grep -qx 'sbin/init' "$WORK/applets.txt" || die 'busybox has no init applet'
}

build_initramfs() {
  build_gen_init_cpio
  local r=$WORK/rootfs
  stage_busybox_root "$r"
  mkdir -p "$IMAGES"
  make_cpio "$r" "$WORK/applets.txt" "$IMAGES/initramfs.cpio.gz" "$WORK/initramfs.spec"
  log "initramfs: $(du -b "$IMAGES/initramfs.cpio.gz" | cut -f1) bytes," \
    "$(wc -l <"$WORK/applets.txt") applets"
}

# ---------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------
json_str() { # minimal JSON string escaping (the values here are plain ASCII)
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

write_provenance() {
  local out=$IMAGES/PROVENANCE.json f first pkg ver arch suite sum gcc_pkg pkgs='' dotconfig
  # Each package as fetched by this tree's last build, or, for a target not rebuilt here (say
  # `initramfs` alone: no opensbi fetched), as the lock records it: the committed images that
  # were not rebuilt came from exactly that package. Everything is gathered before the file is
  # written, so a failure leaves the old one whole.
  for pkg in opensbi busybox-static; do
    if [[ -f $WORK/debs/$pkg ]]; then
      IFS=$'\t' read -r pkg ver arch suite sum <"$WORK/debs/$pkg"
    else
      ver=$(recorded "$pkg" version) arch=$(recorded "$pkg" architecture)
      suite=$(recorded "$pkg" suite) sum=$(recorded "$pkg" sha256)
      [[ -n $ver && -n $sum ]] || die "no record of $pkg: run guest/build.sh all"
    fi
    [[ -z $pkgs ]] || pkgs+=$',\n'
    pkgs+=$(printf '    { "name": %s, "version": %s, "architecture": %s, "suite": %s, "sha256": %s }' \
      "$(json_str "$pkg")" "$(json_str "$ver")" "$(json_str "$arch")" \
      "$(json_str "$suite")" "$(json_str "$sum")")
  done
  # The kernel's .config likewise, when the kernel was not built in this tree.
  if [[ -f $KOUT/.config ]]; then
    dotconfig=$(sha256sum "$KOUT/.config" | cut -d' ' -f1)
  else
    dotconfig=$(grep -o '"kernelDotConfigSha256": "[^"]*"' "$LOCK" 2>/dev/null | cut -d'"' -f4 || true)
  fi
  for f in fw_dynamic.bin fw_jump.bin Image.gz initramfs.cpio.gz; do
    [[ -f $IMAGES/$f ]] || die "missing output $IMAGES/$f"
  done
  {
    printf '{\n  "generator": "guest/build.sh",\n'
    printf '  "sourceDateEpoch": %s,\n' "$SOURCE_DATE_EPOCH"
    printf '  "packages": [\n%s' "$pkgs"
    printf '\n  ],\n'
    printf '  "hostPackages": [\n'
    first=1
    gcc_pkg=$(dpkg-query -S "$(realpath "$(command -v "${CROSS}gcc")")" | cut -d: -f1)
    for pkg in "$LINUX_SRC_PKG" gcc-riscv64-linux-gnu "$gcc_pkg" binutils-riscv64-linux-gnu; do
      ((first)) || printf ',\n'
      first=0
      printf '    { "name": %s, "version": %s, "architecture": %s, "suite": "host" }' \
        "$(json_str "$pkg")" "$(json_str "$(dpkg-query -W -f='${Version}' "$pkg")")" \
        "$(json_str "$(dpkg-query -W -f='${Architecture}' "$pkg")")"
    done
    printf '\n  ],\n'
    printf '  "linuxSourceSha256": %s,\n' "$(json_str "$(sha256sum "$LINUX_SRC_TAR" | cut -d' ' -f1)")"
    printf '  "kernelConfigSha256": %s,\n' "$(json_str "$(sha256sum "$KERNEL_CONFIG" | cut -d' ' -f1)")"
    if [[ -n $dotconfig ]]; then
      printf '  "kernelDotConfigSha256": %s,\n' "$(json_str "$dotconfig")"
    fi
    printf '  "crossGcc": %s,\n' "$(json_str "$(${CROSS}gcc --version | head -1)")"
    printf '  "outputs": {\n'
    first=1
    for f in fw_dynamic.bin fw_jump.bin Image.gz initramfs.cpio.gz; do
      ((first)) || printf ',\n'
      first=0
      printf '    %s: { "bytes": %s, "sha256": %s }' "$(json_str "$f")" \
        "$(stat -c %s "$IMAGES/$f")" "$(json_str "$(sha256sum "$IMAGES/$f" | cut -d' ' -f1)")"
    done
    printf '\n  }\n}\n'
  } >"$out.tmp"
  mv "$out.tmp" "$out"
  log "provenance: $out"
}

# ---------------------------------------------------------------------------------------
# Debian's stock kernel (guest/work/stock, not committed)
# ---------------------------------------------------------------------------------------
# Modules wanted from the stock kernel: the virt board's devices. Their dependencies are
# added from modules.dep.
STOCK_MODULES='
virtio virtio_ring virtio_mmio virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev
virtio_blk virtio_net virtio_console virtio_balloon virtio-rng virtio_rng
8250 8250_base 8250_of serial_base
e1000 rtc-goldfish goldfish syscon-reboot syscon-poweroff
pci-host-generic pci-host-common ext4 crc32c_generic
'

# Resolve module names (as in file names, - and _ equivalent) to modules.dep paths in
# load order: dependencies first, each once.
stock_module_order() { # moddir
  local moddir=$1
  awk -v wanted="$STOCK_MODULES" '
    function norm(s) { gsub(/-/, "_", s); return s }
    function base(p,   s) { s = p; sub(/.*\//, "", s); sub(/\.ko(\.(xz|zst|gz))?$/, "", s); return norm(s) }
    function visit(p,   n, i, parts) {
      if (p in seen) return
      seen[p] = 1
      n = split(deps[p], parts, " ")
      for (i = 1; i <= n; i++) visit(parts[i])
      print p
    }
    BEGIN { n = split(wanted, w, /[ \n]+/); for (i = 1; i <= n; i++) if (w[i] != "") want[norm(w[i])] = 1 }
    {
      p = $1; sub(/:$/, "", p); d = $0; sub(/^[^:]*:[ ]*/, "", d)
      deps[p] = d; order[++count] = p
    }
    END { for (i = 1; i <= count; i++) if (base(order[i]) in want) visit(order[i]) }
  ' "$moddir/modules.dep"
}

build_stock() {
  build_gen_init_cpio
  local out=$WORK/stock x=$WORK/pkg/stock-kernel img ver pkg dep moddir order m
  rm -rf "$x"
  mkdir -p "$out" "$x"
  # linux-image-riscv64 is a metapackage → linux-image-VER-riscv64. Up to trixie that
  # package holds vmlinuz and the modules; from forky on it is empty and depends on
  # linux-binary-VER (the Image, /usr/lib/modules/VER/vmlinuz) and linux-modules-VER.
  apt_setup
  dep=$(apt_field linux-image-riscv64 Depends | tr ',' '\n' | grep -o 'linux-image-[^ ]*' | head -1 || true)
  [[ -n $dep ]] || die 'cannot resolve linux-image-riscv64 to a versioned kernel package'
  for pkg in linux-image-riscv64 "$dep" "${dep/linux-image-/linux-binary-}" \
    "${dep/linux-image-/linux-modules-}"; do
    [[ -n $(apt_field "$pkg" Version) ]] || continue
    fetch_deb "$pkg"
    dpkg-deb -x "$DEB" "$x"
  done
  img=$(find "$x/boot" "$x/usr/lib/modules" -maxdepth 2 -name 'vmlinu[xz]*' -type f 2>/dev/null | head -1 || true)
  [[ -n $img ]] || die "no vmlinuz in the packages of $dep"
  # riscv64's vmlinuz is the raw Image, or (newer kernels) gzip-compressed
  if gzip -t "$img" 2>/dev/null; then gzip -dc "$img" >"$out/Image"; else cp "$img" "$out/Image"; fi
  moddir=$(find "$x/lib/modules" "$x/usr/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1 || true)
  [[ -n $moddir ]] || die "no /usr/lib/modules/VERSION in the packages of $dep"
  ver=$(basename "$moddir")
  # The packages do not ship modules.dep (the postinst runs depmod): run the host's depmod,
  # which reads foreign-architecture modules fine. It looks under BASE/lib/modules.
  if [[ ! -f $moddir/modules.dep ]]; then
    if [[ ! -d $x/lib/modules/$ver ]]; then
      mkdir -p "$x/lib/modules"
      ln -sfn "$moddir" "$x/lib/modules/$ver"
    fi
    depmod -b "$x" "$ver" 2>"$WORK/stock-depmod.log" ||
      die "depmod failed (see guest/work/stock-depmod.log)"
  fi
  log "stock: kernel $ver, image $(stat -c %s "$out/Image") bytes"

  local r=$WORK/stock-rootfs
  stage_busybox_root "$r"
  order=$(stock_module_order "$moddir")
  mkdir -p "$r/lib/modules"
  : >"$r/etc/modules.order"
  for m in $order; do
    mkdir -p "$r/lib/modules/$(dirname "$m")"
    case $m in
      *.xz) xz -dc "$moddir/$m" >"$r/lib/modules/${m%.xz}" ;;
      *.zst) zstd -qdc "$moddir/$m" >"$r/lib/modules/${m%.zst}" ;;
      *.gz) gzip -dc "$moddir/$m" >"$r/lib/modules/${m%.gz}" ;;
      *) cp "$moddir/$m" "$r/lib/modules/$m" ;;
    esac
    m=${m%.xz}
    m=${m%.zst}
    printf '%s\n' "${m%.gz}" >>"$r/etc/modules.order"
  done
  make_cpio "$r" "$WORK/applets.txt" "$out/initramfs.cpio.gz" "$out/initramfs.spec"
  log "stock: $(wc -l <"$r/etc/modules.order") modules; $out/{Image,initramfs.cpio.gz}"

  # GRUB as Debian's riscv64 images start it from their EFI system partition: the monolithic
  # image (every module built in; it looks for its grub.cfg in /EFI/debian of the partition it
  # was loaded from) that grub-install copies there. grubnet: the same for netboot (its prefix
  # is /grub on the TFTP server it came from).
  x=$WORK/pkg/stock-grub
  extract_deb grub-efi-riscv64-unsigned "$x"
  cp "$x/usr/lib/grub/riscv64-efi/monolithic/"grub{,net}riscv64.efi "$out/"
  log "stock: GRUB $(cut -f2 "$WORK/debs/grub-efi-riscv64-unsigned") $out/grub{,net}riscv64.efi"
  log "stock: boot with -bios guest/images/fw_dynamic.bin (fw_jump.bin hangs on a kernel this size)"
}

# ---------------------------------------------------------------------------------------
main() {
  local what=${1:-all}
  case $what in
    -h | --help | help)
      sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      return
      ;;
    all | firmware | kernel | initramfs | provenance | stock) ;;
    *) die "unknown target '$what' (all|firmware|kernel|initramfs|provenance|stock)" ;;
  esac
  ensure_host_packages
  init_epoch
  mkdir -p "$WORK" "$CACHE" "$IMAGES"
  case $what in
    all)
      build_firmware
      build_kernel
      build_initramfs
      write_provenance
      ;;
    firmware) build_firmware ;;
    kernel) build_kernel ;;
    initramfs) build_initramfs ;;
    provenance) write_provenance ;;
    stock)
      LOCK_STRICT=0
      build_stock
      ;;
  esac
}

main "$@"
