package clientapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandlersDoNotProbeTheStore: no handler type-asserts the API's store
// to reach a method Store does not list. Such a probe hides a dependency
// (and fails only at run time, with a silent fallback); a handler that
// needs a read gets a small interface of its own from New instead.
func TestHandlersDoNotProbeTheStore(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ta, ok := n.(*ast.TypeAssertExpr)
			if !ok || ta.Type == nil { // a type switch's x.(type)
				return true
			}
			if sel, ok := ta.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "store" {
				t.Errorf("%s: type assertion on the store; pass the handler the interface it needs", fset.Position(ta.Pos()))
			}
			return true
		})
	}
}
