#!/usr/bin/env bash
# ci.sh compiles the cuda-tagged build without a GPU: go vet -tags cuda and go test -c -tags cuda.
# Nothing is run (a binary built with -tags cuda exits at start on a machine without a GPU).
#
# Linking needs cuda.h and a libcuda.so. If the system has them (nvidia-cuda-dev or the full
# nvidia-cuda-toolkit installed) they are used. Otherwise the script takes only those two files
# out of Debian bookworm's nvidia-cuda-dev package (non-free; contrib and non-free are added to
# the apt sources when missing): cuda.h and the driver stub stubs/libcuda.so, unpacked into
# $CUDA_STUB_DIR (default /var/cache/lighttransfer-cuda) without installing the package and its
# ~2 GB of dependencies. Idempotent: a second run reuses the unpacked files.
# The kernels are precompiled (kernels/attention.fatbin); nvcc is needed only by kernels/gen.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

stub="${CUDA_STUB_DIR:-/var/cache/lighttransfer-cuda}"
arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"

have_system() {
	[ -f /usr/include/cuda.h ] || [ -f /usr/local/cuda/include/cuda.h ] || return 1
	[ -e "/usr/lib/$arch/libcuda.so" ] || [ -e /usr/local/cuda/lib64/libcuda.so ] ||
		[ -e /usr/local/cuda/lib64/stubs/libcuda.so ] || return 1
}

add_nonfree() {
	local f=/etc/apt/sources.list.d/debian.sources
	if [ -f "$f" ]; then
		grep -q '^Components:.*non-free' "$f" ||
			sed -i -E 's/^Components: main$/Components: main contrib non-free non-free-firmware/' "$f"
	elif [ -f /etc/apt/sources.list ] && ! grep -q 'non-free' /etc/apt/sources.list; then
		sed -i -E 's/^(deb .*bookworm[^ ]*) main$/\1 main contrib non-free non-free-firmware/' /etc/apt/sources.list
	fi
}

if ! have_system; then
	if [ ! -f "$stub/usr/include/cuda.h" ] || [ ! -f "$stub/usr/lib/$arch/stubs/libcuda.so" ]; then
		echo "cuda: fetching cuda.h and the libcuda stub from nvidia-cuda-dev"
		add_nonfree
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		tmp="$(mktemp -d)"
		chmod 755 "$tmp" # apt downloads as _apt
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && apt-get download -qq nvidia-cuda-dev)
		mkdir -p "$stub"
		dpkg-deb --fsys-tarfile "$tmp"/nvidia-cuda-dev_*.deb |
			tar -x -C "$stub" ./usr/include/cuda.h "./usr/lib/$arch/stubs/libcuda.so"
		rm -rf "$tmp"
	fi
	export CGO_CFLAGS="${CGO_CFLAGS:-} -I$stub/usr/include"
	export CGO_LDFLAGS="${CGO_LDFLAGS:-} -L$stub/usr/lib/$arch/stubs"
fi

go vet -tags cuda ./cuda/...
go test -c -tags cuda -o /dev/null ./cuda
echo "cuda: tagged build vets and compiles"
