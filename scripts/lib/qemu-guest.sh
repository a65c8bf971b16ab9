# shellcheck shell=bash
# What the QEMU harnesses (qemu-e1000-test, qemu-e1000-bench, qemu-nvme-test) share:
# installing QEMU and busybox, fetching and caching a Debian kernel and its modules,
# building static guest binaries, packing an initramfs, choosing an accelerator.
#
# Sourced, not run. The sourcing script sets, before calling these functions:
#   ROOT TARGET_DIR CACHE TRIPLE   the workspace, its target dir, the cache dir, the triple
#   KCACHE                         where the kernel is cached (default: CACHE)
#   BACKEND                        uio or vfio (which modules the e1000 guest needs, and
#                                  backend_options: the machine and kernel arguments)
#   log MSG / die MSG              its own progress and fatal-error printers
# and may define guest_modules again (it sets MODULES: the kernel modules its guest needs,
# in load order) after sourcing; the default is the e1000 harnesses'.

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

apt_install() {
    log "installing $*"
    $SUDO apt-get install -y --no-install-recommends "$@" >"$CACHE/apt.log" 2>&1 || {
        $SUDO apt-get update >>"$CACHE/apt.log" 2>&1 &&
            $SUDO apt-get install -y --no-install-recommends "$@" >>"$CACHE/apt.log" 2>&1
    } || die "apt-get install $* failed (see $CACHE/apt.log)"
}

# ensure_tools [CMD:PACKAGE...]: QEMU, a static busybox, cpio and python3, and each CMD
# (looked for in PATH and in /sbin, /usr/sbin) from its PACKAGE when missing.
ensure_tools() {
    local want=() extra
    for extra in "$@"; do
        local cmd=${extra%%:*}
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || [ -x "/sbin/$cmd" ] ||
            want+=("${extra#*:}")
    done
    command -v qemu-system-x86_64 >/dev/null || want+=(qemu-system-x86)
    # busybox-static: the guest's shell and tools (a dynamic busybox would need libc).
    if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then
        want+=(busybox-static)
    fi
    command -v cpio >/dev/null || want+=(cpio)
    command -v python3 >/dev/null || want+=(python3)
    [ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"
}

KVER= KDIR= KERNEL=
# The modules a guest needs for the VFIO backend, in load order.
VFIO_MODULES=(virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1
    drivers/vfio/vfio_virqfd drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci)
# The guest's modules, in load order (init loads them all but e1000, which the checks load).
MODULES=()
guest_modules() {
    MODULES=(drivers/uio/uio drivers/uio/uio_pci_generic drivers/net/tun)
    if [ "$BACKEND" = vfio ]; then MODULES+=("${VFIO_MODULES[@]}"); fi
    MODULES+=(drivers/net/ethernet/intel/e1000/e1000)
}

# backend_options: sets MACHINE_OPTS (QEMU arguments, before the device's) and KERNEL_ARGS
# (appended to the guest's command line) for BACKEND. VFIO needs an IOMMU: q35 with
# QEMU's emulated VT-d, which must come before the device, and intel_iommu=on.
MACHINE_OPTS=() KERNEL_ARGS=
backend_options() {
    MACHINE_OPTS=() KERNEL_ARGS=
    if [ "$BACKEND" = vfio ]; then
        MACHINE_OPTS=(-machine q35 -device intel-iommu)
        KERNEL_ARGS=" intel_iommu=on"
    fi
}

# A Debian linux-image-6.1.*-amd64 in the cache (apt-get download + dpkg -x), its
# uncompressed vmlinux for a PVH boot (the xz decompressor is slow under TCG; falls back to
# the bzImage) and the modules of MODULES, unpacked.
ensure_kernel() {
    guest_modules
    local pkg kcache=${KCACHE:-$CACHE}
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' | head -n1)
    if [ -z "$pkg" ]; then
        # No package lists yet (or not Debian 12): refresh once, else reuse the cache.
        $SUDO apt-get update >"$CACHE/apt.log" 2>&1 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' | head -n1)
    fi
    if [ -z "$pkg" ]; then
        pkg=$(cd "$kcache" && ls -d linux-image-6.1.*-amd64 2>/dev/null | tail -n1 || true)
        [ -n "$pkg" ] || die "cannot find a linux-image-6.1.*-amd64 package (apt-cache depends linux-image-amd64)"
    fi
    KVER=${pkg#linux-image-}
    KDIR=$kcache/$pkg
    if [ ! -f "$KDIR/boot/vmlinuz-$KVER" ]; then
        log "fetching $pkg"
        rm -rf "$kcache/dl" && mkdir -p "$kcache/dl"
        # apt drops privileges to _apt for downloads; the cache dir may not be theirs.
        (cd "$kcache/dl" && apt-get download "$pkg" >"$CACHE/apt-download.log" 2>&1) ||
            die "apt-get download $pkg failed (see $CACHE/apt-download.log)"
        rm -rf "$KDIR.tmp" && dpkg -x "$kcache"/dl/"$pkg"_*.deb "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR"
        rm -rf "$kcache/dl"
    fi
    KERNEL=$KDIR/boot/vmlinuz-$KVER
    if [ ! -s "$KDIR/vmlinux" ]; then
        python3 - "$KERNEL" "$KDIR/vmlinux.tmp" <<'PY' && mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux" || rm -f "$KDIR/vmlinux.tmp"
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit(1)
out = lzma.LZMADecompressor().decompress(data[at:])
if out[:4] != b"\x7fELF":
    sys.exit(1)
open(sys.argv[2], "wb").write(out)
PY
    fi
    if [ -s "$KDIR/vmlinux" ]; then KERNEL=$KDIR/vmlinux; fi
    for m in "${MODULES[@]}"; do
        local ko=$KDIR/lib/modules/$KVER/kernel/$m.ko
        if [ ! -f "$ko" ] && [ -f "$ko.xz" ]; then xz -dk "$ko.xz"; fi
        [ -f "$ko" ] || die "module $m.ko not found in $pkg"
    done
}

# build_static CARGO_ARGS...: builds the guest programs as static binaries
# (-C target-feature=+crt-static) into $TARGET_DIR/$TRIPLE/release.
build_static() {
    log "building the guest binaries (static)"
    # With --target, RUSTFLAGS reach only the target's artifacts, not proc macros. No LTO
    # and more codegen units: the guest runs a short test, the build is what takes time.
    (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_INCREMENTAL=true \
        cargo build --release --target "$TRIPLE" "$@" >"$CACHE/build.log" 2>&1) ||
        { tail -n 40 "$CACHE/build.log" >&2; die "building the guest binaries failed (see $CACHE/build.log)"; }
}

# The guest's /init: mounts, loads every module of lib/modules/order, finds the NIC ($ADDR,
# driver_of), defines pass/fail/check and runs /checks.sh; NAME is its marker prefix.
#      check NAME CMD...    runs CMD, prints PASS NAME or FAIL NAME (with CMD's exit code)
#      pass NAME / fail NAME WHY
write_init() {
    local marker=${1:-E1000-HARNESS}
    sed "s/@MARKER@/$marker/g" <<'EOF2'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run
echo "@MARKER@: booted in $(cut -d' ' -f1 /proc/uptime) s"
pass() { echo "PASS $1"; }
fail() { n=$1; shift; echo "FAIL $n: $*"; }
check() {
    n=$1; shift
    out=$("$@" 2>&1); rc=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/  | /'
    if [ $rc -eq 0 ]; then pass "$n"; else fail "$n" "exit $rc: $*"; fi
}
for m in $(cat /lib/modules/order); do
    insmod /lib/modules/$m.ko || fail "insmod-$m" "insmod $m.ko failed"
done
ADDR=
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat $d/vendor)" = 0x8086 ]; then
        case "$(cat $d/device)" in 0x100e|0x100f|0x100c) ADDR=${d##*/}; break ;; esac
    fi
done
driver_of() { l=$(readlink /sys/bus/pci/devices/$ADDR/driver 2>/dev/null) && echo "${l##*/}" || echo none; }
if [ -n "$ADDR" ]; then
    pass "find-nic"
    echo "nic: $ADDR $(cat /sys/bus/pci/devices/$ADDR/vendor):$(cat /sys/bus/pci/devices/$ADDR/device)"
    echo "hugepages: $(grep -E 'HugePages_Free' /proc/meminfo)"
    . /checks.sh
else
    fail "find-nic" "no 8086:100e/100f/100c in /sys/bus/pci/devices"
fi
echo "@MARKER@: done at $(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
EOF2
}

# pack_initramfs NAME MARKER BINS...: an uncompressed initramfs $CACHE/initramfs-NAME.cpio
# (in INITRD) with busybox, BINS, the modules of MODULES, /init and /checks.sh read from
# stdin.
INITRD=
pack_initramfs_from() {
    local name=$1 marker=$2
    shift 2
    local dir=$CACHE/initramfs-$name
    rm -rf "$dir" && mkdir -p "$dir"/{bin,dev,proc,sys,tmp,run,lib/modules}
    cp /bin/busybox "$dir/bin/busybox"
    [ $# -eq 0 ] || cp "$@" "$dir/bin/"
    local m
    for m in "${MODULES[@]}"; do
        cp "$KDIR/lib/modules/$KVER/kernel/$m.ko" "$dir/lib/modules/"
        # init loads every module but e1000 (the checks load it when they want it).
        [ "${m##*/}" = e1000 ] || echo "${m##*/}" >>"$dir/lib/modules/order"
    done
    write_init "$marker" >"$dir/init"
    chmod +x "$dir/init"
    cat >"$dir/checks.sh"
    INITRD=$CACHE/initramfs-$name.cpio
    # Uncompressed: unpacking gzip costs more than it saves under TCG.
    (cd "$dir" && find . | cpio -o -H newc --quiet >"$INITRD")
}

kvm_works() {
    [ -w /dev/kvm ] || return 1
    # A nested KVM can accept the guest and then hang it: boot for real, briefly.
    local out
    out=$(timeout -k 2 20 qemu-system-x86_64 -accel kvm -m 256 -display none -no-reboot \
        -serial stdio -monitor none -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/bin/busybox -- poweroff -f" </dev/null 2>&1 || true)
    [ -n "$out" ] && ! echo "$out" | grep -qi 'error'
}

# accel_options ACCEL: sets ACCEL_OPTS (QEMU's -accel/-cpu) for tcg, kvm or auto.
ACCEL_OPTS=()
accel_options() {
    local accel=$1
    if [ "$accel" = auto ]; then
        if kvm_works; then accel=kvm; else accel=tcg; fi
        log "accelerator: $accel"
    fi
    ACCEL_OPTS=(-accel tcg,thread=multi -cpu max)
    [ "$accel" = kvm ] && ACCEL_OPTS=(-accel kvm -cpu host)
    ACCEL_USED=$accel
}
