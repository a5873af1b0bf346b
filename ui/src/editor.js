// The SQL editor: CodeMirror 6 with SQL highlighting, and completion of the sources, schemas,
// tables and columns the signed-in caller may read (from `GET /v1/tables?with_columns=true`,
// which lists only those).

import { EditorState, Compartment, Prec } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, placeholder,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput } from "@codemirror/language";
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { sql, PostgreSQL } from "@codemirror/lang-sql";

/** The completion namespace of `tables`: source → schema → table → columns, and the default
 * schema's tables by their bare names too. */
export function namespace(tables, defaults) {
  const ns = {};
  for (const t of tables) {
    const cols = (t.fields || []).map((f) => ({ label: f.name, type: "property", detail: f.type }));
    ((ns[t.source] ??= {})[t.schema] ??= {})[t.table] = cols;
    if (defaults && t.source === defaults.catalog && t.schema === defaults.schema) ns[t.table] = cols;
  }
  return ns;
}

export class SqlEditor {
  constructor(host, { nonce, doc, onRun, onExplain }) {
    this.language = new Compartment();
    const keys = Prec.highest(
      keymap.of([
        { key: "Mod-Enter", run: () => (onRun(), true) },
        { key: "Mod-Shift-Enter", run: () => (onExplain(), true) },
      ]),
    );
    this.view = new EditorView({
      parent: host,
      state: EditorState.create({
        doc,
        extensions: [
          keys,
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightActiveLine(),
          drawSelection(),
          history(),
          indentOnInput(),
          bracketMatching(),
          closeBrackets(),
          autocompletion({ activateOnTyping: true }),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
          placeholder("SELECT … (Ctrl/Cmd-Enter runs, Ctrl/Cmd-Shift-Enter explains)"),
          EditorView.contentAttributes.of({ "aria-label": "SQL statement" }),
          EditorView.lineWrapping,
          this.language.of(sql({ dialect: PostgreSQL, upperCaseKeywords: true })),
          ...(nonce ? [EditorView.cspNonce.of(nonce)] : []),
        ],
      }),
    });
  }

  /** Completes these tables and columns from now on. */
  setTables(tables, defaults) {
    const schema = namespace(tables, defaults);
    this.view.dispatch({
      effects: this.language.reconfigure(sql({ dialect: PostgreSQL, upperCaseKeywords: true, schema })),
    });
  }

  get text() {
    return this.view.state.doc.toString();
  }

  set text(value) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } });
  }

  /** The selected text if any, else the whole statement. */
  statement() {
    const sel = this.view.state.selection.main;
    const picked = sel.empty ? "" : this.view.state.sliceDoc(sel.from, sel.to);
    return (picked.trim() ? picked : this.text).trim();
  }

  insert(text) {
    const sel = this.view.state.selection.main;
    this.view.dispatch({ changes: { from: sel.from, to: sel.to, insert: text }, selection: { anchor: sel.from + text.length } });
    this.view.focus();
  }

  focus() {
    this.view.focus();
  }
}
