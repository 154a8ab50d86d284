# The real nixpkgs lib, vendored in ../../nixpkgs-lib: `<nixpkgs/lib>` and `import ./lib` find it here.
import ../../nixpkgs-lib/lib
