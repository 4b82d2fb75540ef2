# greeting NAME: the text greet prints.
greeting() {
  printf 'hello, %s (greet %s)\n' "$1" "$VERSION"
}
