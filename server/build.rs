// Stack scripts and host scripts are embedded in the binary (so a bundled sidecar can build golden
// images); rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../stacks");
    println!("cargo:rerun-if-changed=../scripts/build-base-image.sh");
}
