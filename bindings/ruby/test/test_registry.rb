# frozen_string_literal: true

require 'minitest/autorun'
require 'tasker'

module RegistryFixtures
  class Handler
    def call(_context) = {}
  end

  class NoCall; end
end

class TestRegistry < Minitest::Test
  def setup
    @registry = TaskerCore::Registry::HandlerRegistry.new
  end

  def test_constant_lookup
    assert_equal RegistryFixtures::Handler, @registry.resolve('RegistryFixtures::Handler').target
    assert_nil @registry.resolve('RegistryFixtures::Missing')
    assert_nil @registry.resolve('RegistryFixtures::NoCall')
    assert_nil @registry.resolve('builtin.square')
    assert_nil @registry.resolve('system("x")')
  end

  def test_explicit_registration_wins
    @registry.register_handler('RegistryFixtures::Handler') { |_c| { 'explicit' => true } }
    assert_kind_of Proc, @registry.resolve('RegistryFixtures::Handler').target
    @registry.register_handler('payments.charge', RegistryFixtures::Handler)
    assert @registry.handler_available?('payments.charge')
    assert_equal %w[RegistryFixtures::Handler payments.charge], @registry.registered_handlers
    assert_raises(ArgumentError) { @registry.register_handler('x', RegistryFixtures::NoCall) }
    assert_raises(ArgumentError) { @registry.register_handler('x') }
  end

  def test_module_function_and_alias
    TaskerCore.register_handler('unit.lambda', ->(_c) { {} })
    assert TaskerCore::Registry::HandlerRegistry.instance.handler_available?('unit.lambda')
    assert_same TaskerCore, Tasker
  ensure
    TaskerCore::Registry::HandlerRegistry.instance.unregister_handler('unit.lambda')
  end
end

class TestJsonCheckAndTemplates < Minitest::Test
  def test_dump
    assert_equal '{"a":[1,2.5,"s",true,null],"b":"sym"}', TaskerCore::JsonCheck.dump({ a: [1, 2.5, 's', true, nil], b: :sym })
    assert_equal '{"big":123456789012345678901234567890}', TaskerCore::JsonCheck.dump({ 'big' => 123_456_789_012_345_678_901_234_567_890 })
    e = assert_raises(TaskerCore::Errors::SerializationError) { TaskerCore::JsonCheck.dump({ 1 => 2 }) }
    assert_match(/keys must be strings/, e.message)
    e = assert_raises(TaskerCore::Errors::SerializationError) { TaskerCore::JsonCheck.dump([Time.now]) }
    assert_match(/\[0\] is a Time/, e.message)
    assert_raises(TaskerCore::Errors::SerializationError) { TaskerCore::JsonCheck.dump("\xFF".dup.force_encoding('BINARY')) }
  end

  def test_template_steps
    dir = File.expand_path('../../../examples/ruby/templates', __dir__)
    steps = TaskerCore::Templates.steps(dir)
    assert_equal 4 + 4 + 7 + 8, steps.length # linear, diamond, complex_dag, tree
    assert_equal ['MathWorkflows::SquareHandler'], steps.map(&:callable).uniq
    assert_equal %w[complex_dag_workflow_rb diamond_workflow_rb linear_workflow_rb tree_workflow_rb],
                 steps.map(&:namespace).uniq.sort
    assert_raises(TaskerCore::Errors::ConfigurationError) { TaskerCore::Templates.steps('/nonexistent') }
  end
end
