import ast, sys, pathlib
for p in sys.argv[1:]:
    src = pathlib.Path(p).read_text(); n = len(src.splitlines())
    if n > 350: print(f"MODULE {p}: {n} lines")
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], 'value', None), ast.Constant) and isinstance(body[0].value.value, str):
                body = body[1:]
            if not body: continue
            ln = body[-1].end_lineno - body[0].lineno + 1
            if ln > 50: print(f"FUNC {p}:{node.lineno} {node.name}: {ln} lines")
