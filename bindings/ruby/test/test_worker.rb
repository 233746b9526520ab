# frozen_string_literal: true

require 'minitest/autorun'
require 'tasker'

# TaskerCore::Worker before it starts: options, settings, handler loading and resolution.
class TestWorkerSetup < Minitest::Test
  EXAMPLES = File.expand_path('../../../examples/ruby', __dir__)

  def test_settings_and_threads
    w = TaskerCore::Worker.new(templates: 't', settings: { 'worker.max_concurrent_handlers' => 3 })
    assert_equal 3, w.threads
    w = TaskerCore::Worker.new(templates: 't', threads: 2, settings: ['worker.id=a', 'log.level=debug'])
    assert_equal 2, w.threads
    assert_raises(ArgumentError) { TaskerCore::Worker.new(templates: 't', settings: ['nokey']) }
    assert_raises(ArgumentError) { TaskerCore::Worker.new(templates: 't', threads: 0) }
  end

  def test_resolution_of_the_examples
    registry = TaskerCore::Registry::HandlerRegistry.new
    w = TaskerCore::Worker.new(templates: "#{EXAMPLES}/templates", handlers_dir: "#{EXAMPLES}/handlers",
                               registry: registry)
    w.send(:load_handlers)
    w.send(:resolve_handlers)
    assert_equal ['MathWorkflows::SquareHandler'], w.host_handlers
    assert_empty w.unresolved
  end

  def test_missing_handler_directory
    w = TaskerCore::Worker.new(templates: "#{EXAMPLES}/templates", handlers_dir: '/nonexistent')
    assert_raises(TaskerCore::Errors::ConfigurationError) { w.send(:load_handlers) }
  end
end
