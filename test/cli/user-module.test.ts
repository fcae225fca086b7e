// User modules in TypeScript, loaded by the command as a user runs it: the
// package as installed (its sources compiled to JavaScript, under
// node_modules/eventsourcing), started by plain `node`, with no loader given,
// and the user's module importing the library by its name.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runNode } from './child.js'
import { STORES, seed } from './fixtures.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
// Node that strips types itself needs no loader, and has no error to show when tsx is missing.
const nodeStripsTypes = Boolean((process.features as { typescript?: unknown }).typescript)

// The dog school's classes, as a user would write them in their own project.
const SCHOOL = `import { Aggregate } from 'eventsourcing'

export class Dog extends Aggregate {
  static readonly topic: string = 'dogschool:Dog'
  name: string = ''
  tricks: string[] = []
  static readonly Registered = Dog.created('dogschool:Dog.Registered', (dog: Dog, e: { name: string }) => {
    dog.name = e.name
  })
  static readonly TrickAdded = Dog.event('dogschool:Dog.TrickAdded', (dog: Dog, e: { trick: string }) => {
    dog.tricks.push(e.trick)
  })
}
`

describe('a TypeScript --module, with the package as installed and plain node', () => {
  let project: string
  let main: string

  beforeAll(() => {
    project = mkdtempSync(join(tmpdir(), 'es-cli-project-'))
    main = install(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }))
    writeFileSync(join(project, 'school.ts'), SCHOOL)
    writeFileSync(join(project, 'school-js.js'), ts.transpileModule(SCHOOL, { compilerOptions }).outputText)
  })

  afterAll(() => {
    rmSync(project, { recursive: true, force: true })
  })

  const [, newStore] = STORES[0] as (typeof STORES)[number]

  async function state(module: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const store = newStore()
    const [id] = await seed(store)
    const sqlitePath = store.flags.sqlitePath as string
    const run = runNode(
      [main, 'state', id as string, '--app', 'DogSchool', '--sqlite-path', sqlitePath, '--module', module, '--json'],
      {
        cwd: project,
      },
    )
    const { code } = await run.exit
    return { code, stdout: run.stdout(), stderr: run.stderr() }
  }

  it('loads a JavaScript module as Node imports it', async () => {
    const { code, stdout, stderr } = await state('school-js.js')
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({
      class: 'Dog',
      state: { name: 'Fido', tricks: ['roll over', 'play dead'] },
    })
  })

  it('loads a TypeScript module, whose classes are those of the library the command runs', async () => {
    const { code, stdout, stderr } = await state('school.ts')
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({
      class: 'Dog',
      state: { name: 'Fido', tricks: ['roll over', 'play dead'] },
    })
  })

  it.skipIf(nodeStripsTypes)('says what to do with a .ts module that tsx takes for CommonJS', async () => {
    mkdirSync(join(project, 'cjs'))
    writeFileSync(join(project, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }))
    writeFileSync(join(project, 'cjs', 'school.ts'), SCHOOL)
    const { code, stderr } = await state('cjs/school.ts')
    expect(code).toBe(1)
    expect(stderr).toMatch(
      /^eventsourcing: Module cjs\/school.ts failed to load: it was loaded as CommonJS, outside a package of "type": "module": name it .mts, or set "type": "module" in its package.json \(.*require\(\).*\)\n$/,
    )
    writeFileSync(join(project, 'cjs', 'school.mts'), SCHOOL)
    expect((await state('cjs/school.mts')).code).toBe(0)
  })

  it.skipIf(nodeStripsTypes)('says what to do where Node cannot run TypeScript and tsx is not installed', async () => {
    rmSync(join(project, 'node_modules', 'tsx'))
    const { code, stdout, stderr } = await state('school.ts')
    expect(stdout).toBe('')
    expect(code).toBe(1)
    expect(stderr).toBe(
      `eventsourcing: Module school.ts is TypeScript, which Node ${process.version} cannot import by itself, and tsx is not installed: ` +
        'install it (npm install --save-dev tsx), or give the module compiled to JavaScript, or use Node 22.18 or later\n',
    )
  })
})

const compilerOptions: ts.CompilerOptions = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  verbatimModuleSyntax: true,
}

/**
 * Installs the package in `project` as npm would: its sources compiled to
 * dist/ (each file on its own, as the build's output would be) under
 * node_modules/eventsourcing with its package.json, beside links to the
 * packages it needs, tsx among them.
 *
 * @returns the path of the installed command.
 */
function install(project: string): string {
  const modules = join(project, 'node_modules')
  const installed = join(modules, 'eventsourcing')
  for (const file of sourceFiles(join(root, 'src'))) {
    const output = join(installed, 'dist', relative(join(root, 'src'), file)).replace(/\.ts$/, '.js')
    mkdirSync(dirname(output), { recursive: true })
    writeFileSync(output, ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions }).outputText)
  }
  cpSync(join(root, 'package.json'), join(installed, 'package.json'))
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (!name.startsWith('.')) symlinkSync(join(root, 'node_modules', name), join(modules, name))
  }
  return join(installed, 'dist', 'cli', 'main.js')
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}
