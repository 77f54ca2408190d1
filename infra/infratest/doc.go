// Package infratest checks Postern's deployment assets offline: the
// Terraform modules (parse, canonical format, documented variables and
// outputs, tflint), the reproducible Lambda zip and the function under the
// AWS Lambda Runtime Interface Emulator, the systemd units, the .deb and
// .rpm packages, the container definitions, the install script, the key
// generator, and the daemons' cross-compilation. It sits beside the request
// path, not on it: it has only tests. The external tools it runs (tflint,
// nfpm, aws-lambda-rie, systemd-analyze, dpkg-deb) are installed by .ci/run
// at the versions pinned there.
package infratest
