package procinfo

import (
	"path/filepath"
	"slices"
	"strings"
)

// Interpreter families whose programs are named by an argument rather than
// by the executable.
const (
	python = "python"
	node   = "node"
	ruby   = "ruby"
	perl   = "perl"
	php    = "php"
	java   = "java"
	shell  = "shell"
)

// Interpreter classifies an executable path or argv[0] by its basename
// ("python3.12", "node", "java"...), "" when it is not an interpreter.
func Interpreter(path string) string {
	b := filepath.Base(path)
	switch {
	case path == "":
		return ""
	case strings.HasPrefix(b, "python"), strings.HasPrefix(b, "pypy"):
		return python
	case b == "node", b == "nodejs", b == "bun", b == "deno":
		return node
	case strings.HasPrefix(b, "ruby"):
		return ruby
	case strings.HasPrefix(b, "perl"):
		return perl
	case strings.HasPrefix(b, "php"):
		return php
	case b == "java":
		return java
	case b == "sh", b == "bash", b == "dash", b == "zsh", b == "ksh", b == "ash":
		return shell
	}
	return ""
}

// Per family: options that consume the next argument, and options after
// which no script follows (code given inline).
var (
	argOpts = map[string][]string{
		python: {"-W", "-X", "-Q"},
		node:   {"-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--env-file", "--title"},
		ruby:   {"-I", "-r", "-C", "-E", "-F"},
		perl:   {"-I", "-M", "-m"},
		php:    {"-c", "-d", "-z"},
		java: {"-cp", "-classpath", "--class-path", "-p", "--module-path", "--upgrade-module-path",
			"--add-modules", "--add-opens", "--add-exports", "--add-reads", "--limit-modules", "--enable-native-access"},
		shell: {"-o", "-O", "+o", "+O"},
	}
	inlineOpts = map[string][]string{
		python: {"-c"},
		node:   {"-e", "--eval", "-p", "--print"},
		ruby:   {"-e"},
		perl:   {"-e", "-E"},
		php:    {"-r"},
		shell:  {"-c"},
	}
)

// ScriptNames finds what an interpreter runs in its arguments (argv[1:]):
// the script path, a python -m module, a java -jar file or main class.
// It is a best-effort reading of each family's option syntax.
func ScriptNames(interp string, args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() []string {
			if i+1 < len(args) {
				return []string{args[i+1]}
			}
			return nil
		}
		switch {
		case a == "--":
			return next()
		case a == "-" || !strings.HasPrefix(a, "-") && !(interp == shell && strings.HasPrefix(a, "+")):
			if a == "-" {
				return nil // script on stdin
			}
			if interp == java {
				return javaMain(a)
			}
			return []string{a}
		case interp == python && a == "-m", interp == java && (a == "-m" || a == "--module"):
			return next()
		case interp == python && strings.HasPrefix(a, "-m"):
			return []string{a[2:]} // -mhttp.server
		case interp == java && a == "-jar":
			return next()
		case slices.Contains(inlineOpts[interp], a):
			return nil
		case slices.Contains(argOpts[interp], a):
			i++ // skip the option's argument
		}
	}
	return nil
}

// javaMain names a main class both fully and by its simple name.
func javaMain(class string) []string {
	if j := strings.LastIndexByte(class, '.'); j >= 0 && j+1 < len(class) {
		return []string{class, class[j+1:]}
	}
	return []string{class}
}
